package main

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

const valid = `{"coinId":"bitcoin","symbol":"BTC","exchangeId":" Binance ","usdPrice":"67234.12345678","lastUpdated":1764158400123,"source":"s","attribution":"a"}`

func TestDecodesEveryAllowedSpelling(t *testing.T) {
	for name, msg := range map[string]string{
		"decimal strings and epoch ms": valid,
		"JSON numbers and RFC 3339":    `{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":67234.12345678,"marketCap":1.5e3,"lastUpdated":"2025-11-26T12:00:00.123Z","source":"s","attribution":"a"}`,
		"escapes, nulls and extras":    `{"coin\u0049d":"bitcoin","coinId":"bit\u0063oin","symbol":"BTC","exchangeId":"BINANCE","usdPrice":" 67234.12345678 ","marketCap":null,"x":{"y":[1,true,null]},"lastUpdated":1764158400123,"source":"s","attribution":"a"}`,
	} {
		t.Run(name, func(t *testing.T) {
			var d decoder
			p, err := d.decode([]byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			if string(p.coinID) != "bitcoin" || string(p.exchangeID) != "binance" {
				t.Errorf("coin %q, exchange %q", p.coinID, p.exchangeID)
			}
			if got := numericText(t, p.usdPrice); got != "67234.12345678" {
				t.Errorf("usdPrice %s", got)
			}
			want := time.UnixMilli(1764158400123).UTC()
			if name == "JSON numbers and RFC 3339" {
				want = time.Date(2025, 11, 26, 12, 0, 0, 123e6, time.UTC)
			}
			if got := time.UnixMicro(p.lastUpdated + pgEpochMicros).UTC(); !got.Equal(want) {
				t.Errorf("lastUpdated %v, want %v", got, want)
			}
		})
	}
}

func TestRejectsByTheWireFormatsRules(t *testing.T) {
	for msg, code := range map[string]string{
		`{"coinId":"bitcoin"`: codeInvalidJSON,
		`[1]`:                 codeInvalidJSON,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"1","lastUpdated":1,"source":"s","attribution":"a"} x`:                             codeInvalidJSON,
		`{"symbol":"BTC","exchangeId":"binance","usdPrice":"1","lastUpdated":1,"source":"s","attribution":"a"}`:                                                  codeMissingField,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":null,"lastUpdated":1,"source":"s","attribution":"a"}`:                              codeMissingField,
		`{"coinId":"  ","symbol":"BTC","exchangeId":"binance","usdPrice":"1","lastUpdated":1,"source":"s","attribution":"a"}`:                                    codeInvalidField,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":true,"lastUpdated":1,"source":"s","attribution":"a"}`:                              codeInvalidField,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"1x","lastUpdated":1,"source":"s","attribution":"a"}`:                              codeInvalidField,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"1","lastUpdated":1.5,"source":"s","attribution":"a"}`:                             codeInvalidField,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"1","lastUpdated":"now","source":"s","attribution":"a"}`:                           codeInvalidField,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"-1","lastUpdated":1,"source":"s","attribution":"a"}`:                              codeValidation,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"0.000","lastUpdated":1,"source":"s","attribution":"a"}`:                           codeValidation,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"1.123456789","lastUpdated":1,"source":"s","attribution":"a"}`:                     codeInvalidValue,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"1234567890123","lastUpdated":1,"source":"s","attribution":"a"}`:                   codeInvalidValue,
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"1","marketCap":"1.001","lastUpdated":1,"source":"s","attribution":"a"}`:           codeInvalidValue,
		`{"coinId":"bitcoin","symbol":"BTCBTCBTCBTCBTCBTCBTCBTCBTCBTCBTC","exchangeId":"binance","usdPrice":"1","lastUpdated":1,"source":"s","attribution":"a"}`: codeInvalidValue,
	} {
		var d decoder
		_, err := d.decode([]byte(msg))
		var rej *rejection
		if !errors.As(err, &rej) || rej.code != code {
			t.Errorf("%s: got %v, want %s", msg, err, code)
		}
	}
}

// TestNumericEncodingIsWhatPostgreSQLReads decodes the binary NUMERIC with
// pgx's codec, which reads what the server's numeric_recv reads.
func TestNumericEncodingIsWhatPostgreSQLReads(t *testing.T) {
	for in, want := range map[string]string{
		"67234.12345678": "67234.12345678", "0.00000001": "0.00000001", "1e-8": "0.00000001",
		"10000.0001": "10000.0001", "-12.5": "-12.5", "100": "100", "1.5e3": "1500", "0": "0",
		"999999999999.99999999": "999999999999.99999999", "+.5": "0.5", "5.": "5", "0.10": "0.1",
	} {
		var d decoder
		n, ok := d.parseDecimal([]byte(in))
		if !ok {
			t.Fatalf("%s does not parse", in)
		}
		if got := numericText(t, n); got != want {
			t.Errorf("%s encodes as %s, want %s", in, got, want)
		}
	}
}

func numericText(t *testing.T, n decimal) string {
	t.Helper()
	field := appendNumeric(nil, n)
	body := field[4:]
	if int(binary.BigEndian.Uint32(field)) != len(body) {
		t.Fatalf("length prefix %d, body %d bytes", binary.BigEndian.Uint32(field), len(body))
	}
	var num pgtype.Numeric
	if err := pgtype.NewMap().Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, body, &num); err != nil {
		t.Fatal(err)
	}
	text, err := num.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(text)
}
