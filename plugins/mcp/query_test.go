package mcp

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/history"
	"github.com/qicore/qiflow/internal/schema"
)

func TestRangeTakesIdentifiersFromTheSpecAndValuesAsParameters(t *testing.T) {
	spec, err := schema.Load("../../pipelines/schema.yaml")
	require.NoError(t, err)
	r, err := checkRange(spec, queryRangeIn{
		Table: "crypto_ohlcv", From: "2026-12-04T10:00:00Z", To: "2026-12-04T10:05:00Z",
		CoinID: "bitcoin'; DROP TABLE crypto_ohlcv; --", ExchangeID: "binance", Timeframe: "1m",
		Columns: []string{"timestamp", "close", "close"}, Limit: 5,
	})
	require.NoError(t, err)
	assert.Equal(t, history.Range{
		Table: "public.crypto_ohlcv", TimeColumn: "timestamp", Columns: []string{"timestamp", "close"},
		From: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), To: time.Date(2026, 12, 4, 10, 5, 0, 0, time.UTC),
		Match: []history.Match{{Column: "coin_id", Value: "bitcoin'; DROP TABLE crypto_ohlcv; --"}, {Column: "exchange_id", Value: "binance"}, {Column: "timeframe", Value: "1m"}},
		Limit: 6, PageSize: 6,
	}, r, "identifiers from the spec; a value is a parameter, whatever it holds")

	refusals := map[string]queryRangeIn{
		"is not a hypertable":          {Table: `crypto_prices" --`, From: "2026-12-04T10:00:00Z", To: "2026-12-04T10:05:00Z"},
		"is not a column of":           {Table: "crypto_prices", Columns: []string{"1; SELECT"}, From: "2026-12-04T10:00:00Z", To: "2026-12-04T10:05:00Z"},
		"above the cap of 1000":        {Table: "crypto_prices", Limit: maxQueryRows + 1, From: "2026-12-04T10:00:00Z", To: "2026-12-04T10:05:00Z"},
		"is not before":                {Table: "crypto_prices", From: "2026-12-04T10:05:00Z", To: "2026-12-04T10:00:00Z"},
		"has no column timeframe":      {Table: "crypto_prices", Timeframe: "1m", From: "2026-12-04T10:00:00Z", To: "2026-12-04T10:05:00Z"},
		`to "": want an RFC 3339 time`: {Table: "crypto_prices", From: "2026-12-04T10:05:00Z"},
	}
	for want, in := range refusals {
		_, err := checkRange(spec, in)
		require.Error(t, err, want)
		assert.Contains(t, err.Error(), want)
	}
}
