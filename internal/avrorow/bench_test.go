package avrorow

import (
	"os"
	"testing"
	"time"

	"github.com/twmb/avro"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/marketdata"
)

// BenchmarkDecodePrice compares one price decoded into a row from Avro and
// from the JSON wire format, in ns per row.
func BenchmarkDecodePrice(b *testing.B) {
	text, err := os.ReadFile("../../pipelines/schemas/price.avsc")
	if err != nil {
		b.Fatal(err)
	}
	payload, err := avro.MustParse(string(text)).Encode(map[string]any{"coinId": "bitcoin", "symbol": "BTC", "exchangeId": "binance",
		"usdPrice": "67234.12345678", "lastUpdated": time.UnixMilli(1764158400000), "source": "coingecko", "attribution": "CoinGecko",
		"marketCap": "1320000000000.50", "volume24h": "28000000000.25", "change24h": "-1.2345", "change7d": "3.5"})
	if err != nil {
		b.Fatal(err)
	}
	jsonMsg := []byte(`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"67234.12345678","marketCap":1320000000000.5,
		"volume24h":"28000000000.25","change24h":"-1.2345","change7d":"3.5","lastUpdated":1764158400000,"source":"coingecko","attribution":"CoinGecko"}`)
	reader, err := Compile(string(text), marketdata.Price)
	if err != nil {
		b.Fatal(err)
	}
	row := make([]datum.Datum, len(marketdata.Price.Columns))
	b.Run("avro", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := reader.DecodeRow(payload, row); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := marketdata.Price.DecodeInto(jsonMsg, row); err != nil {
				b.Fatal(err)
			}
		}
	})
}
