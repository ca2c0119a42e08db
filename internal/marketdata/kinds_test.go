package marketdata

import (
	"testing"
	"time"

	"github.com/qicore/qiflow/internal/datum"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/result"
)

func str(v any) string {
	if n, ok := v.(pgtype.Numeric); ok {
		return decimal.String(n)
	}
	return v.(string)
}

func TestPriceDecodesExactly(t *testing.T) {
	row, err := Price.Decode([]byte(`{"coinId":"bitcoin","symbol":"BTC","exchangeId":" Binance ",
		"usdPrice":67234.12345678,"lastUpdated":"2026-11-26T12:00:00.123Z","source":"feed","attribution":"test",
		"marketCap":"99999999999.99999999","volume24h":null,"change24h":-1.5}`))
	require.NoError(t, err)
	require.Len(t, row, len(Price.Columns))
	assert.Equal(t, time.Date(2026, 11, 26, 12, 0, 0, 123e6, time.UTC), row[0])
	assert.Equal(t, "bitcoin", row[1])
	assert.Equal(t, "binance", row[3], "exchange ids are trimmed and lower-cased")
	assert.Equal(t, "67234.12345678", str(row[4]))
	assert.Equal(t, "99999999999.99999999", str(row[5]))
	assert.Nil(t, row[6], "null optional fields stay NULL")
	assert.Equal(t, "-1.5", str(row[7]))
	assert.Nil(t, row[8], "absent optional fields stay NULL")
}

func TestEpochMillisecondTimestamps(t *testing.T) {
	row, err := Price.Decode([]byte(`{"coinId":"c","symbol":"C","exchangeId":"x","usdPrice":"0.00000001",
		"lastUpdated":1764158400123,"source":"s","attribution":"a"}`))
	require.NoError(t, err)
	assert.Equal(t, time.UnixMilli(1764158400123).UTC(), row[0])
	assert.Equal(t, "0.00000001", str(row[4]))
}

func TestAnalyticsWithoutExchangeIsGlobal(t *testing.T) {
	row, err := Analytics.Decode([]byte(`{"timestamp":"2026-11-26T12:00:00Z","totalMarketCap":"2500000000000.12",
		"totalVolume":"98000000000","btcDominance":"54.3210","activeCryptocurrencies":12000,"markets":900,
		"marketCapChange24h":"-0.5","source":"s","attribution":"a"}`))
	require.NoError(t, err)
	assert.Equal(t, GlobalExchange, row[1])
	assert.Nil(t, row[5], "ethDominance is optional")
	assert.Equal(t, int32(12000), row[6])
}

func TestBadMessagesAreBusinessErrorsNamingTheProblem(t *testing.T) {
	const candle = `"coinId":"btc","exchangeId":"kraken","timestamp":"2026-11-26T12:00:00Z","volume":"10","source":"s","attribution":"a"`
	tests := []struct {
		name, kind, msg, code, want string
	}{
		{"malformed JSON", "price", `{"coinId":`, CodeInvalidJSON, "not a JSON object"},
		{"not an object", "price", `[1,2]`, CodeInvalidJSON, "not a JSON object"},
		{"missing field", "price", `{"symbol":"B","exchangeId":"x","usdPrice":1,"lastUpdated":1,"source":"s","attribution":"a"}`, CodeMissingField, "coinId is required"},
		{"wrong type", "price", `{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":true,"lastUpdated":1,"source":"s","attribution":"a"}`, CodeInvalidField, "usdPrice: true is not a decimal"},
		{"float-looking garbage", "price", `{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":"12abc","lastUpdated":1,"source":"s","attribution":"a"}`, CodeInvalidField, "usdPrice"},
		{"empty exchange", "price", `{"coinId":"b","symbol":"B","exchangeId":"  ","usdPrice":1,"lastUpdated":1,"source":"s","attribution":"a"}`, CodeInvalidField, "exchangeId"},
		{"bad timestamp", "price", `{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":1,"lastUpdated":"yesterday","source":"s","attribution":"a"}`, CodeInvalidField, "lastUpdated"},
		{"negative price", "price", `{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":"-3","lastUpdated":1,"source":"s","attribution":"a"}`, CodeValidation, "usdPrice must be > 0"},
		{"zero price", "price", `{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":0,"lastUpdated":1,"source":"s","attribution":"a"}`, CodeValidation, "usdPrice must be > 0"},
		{"high below low", "ohlcv", `{` + candle + `,"open":"10","high":"9","low":"11","close":"10","timeframe":"1m"}`, CodeValidation, "high 9 is below open 10"},
		{"low above close", "ohlcv", `{` + candle + `,"open":"10","high":"12","low":"10.5","close":"11","timeframe":"1m"}`, CodeValidation, "low 10.5 is above open 10"},
		{"unknown timeframe", "ohlcv", `{` + candle + `,"open":"10","high":"12","low":"9","close":"11","timeframe":"2m"}`, CodeValidation, `timeframe "2m"`},
		{"dominance over 100", "analytics", `{"timestamp":1,"totalMarketCap":1,"totalVolume":1,"btcDominance":"100.01","activeCryptocurrencies":1,"markets":1,"marketCapChange24h":0,"source":"s","attribution":"a"}`, CodeValidation, "btcDominance must be in [0, 100]"},
		{"fractional count", "analytics", `{"timestamp":1,"totalMarketCap":1,"totalVolume":1,"btcDominance":"50","activeCryptocurrencies":1.5,"markets":1,"marketCapChange24h":0,"source":"s","attribution":"a"}`, CodeInvalidField, "activeCryptocurrencies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Kinds[tt.kind].Decode([]byte(tt.msg))
			require.Error(t, err)
			classified := result.Classify(err)
			assert.Equal(t, result.Business, classified.Category)
			assert.Equal(t, tt.code, classified.Code)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestValidCandle(t *testing.T) {
	row, err := OHLCV.Decode([]byte(`{"coinId":"btc","exchangeId":"kraken","timestamp":1764158400000,"open":"10","high":"12",
		"low":"9","close":"11","volume":0,"timeframe":"1h","source":"s","attribution":"a"}`))
	require.NoError(t, err)
	assert.Equal(t, "1h", row[3])
	assert.Equal(t, "12", str(row[5]))
}

func TestDecodingAPriceIntoARowAllocatesNothing(t *testing.T) {
	msg := []byte(`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"67234.12345678","marketCap":1320000000000.5,
		"volume24h":"28000000000.25","change24h":"-1.2345","change7d":"3.5","lastUpdated":1764158400000,"source":"coingecko","attribution":"CoinGecko"}`)
	row := make([]datum.Datum, len(Price.Columns))
	allocs := testing.AllocsPerRun(100, func() {
		if err := Price.DecodeInto(msg, row); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs, "the hot path decodes straight into the reused row")
	assert.Equal(t, "67234.12345678", row[4].Dec.String())
	assert.Equal(t, "binance", row[3].String())
}
