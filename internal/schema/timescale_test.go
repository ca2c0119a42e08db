package schema_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/schema"
)

// refresh materializes every bucket of the aggregates. It runs outside a
// transaction, as TimescaleDB requires.
// refresh materializes the aggregates fully. TimescaleDB's own refresh
// policies run in the background and may hold an aggregate for a moment
// (SQLSTATE 55P03); the refresh is retried then.
func refresh(t *testing.T, conn *pgx.Conn, aggregates ...string) {
	t.Helper()
	for _, a := range aggregates {
		var err error
		for range 50 {
			_, err = conn.Exec(context.Background(), "CALL refresh_continuous_aggregate($1, NULL, NULL)", a)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		require.NoError(t, err, a)
	}
}

type candle struct {
	group                  string // coin/exchange[/timeframe]
	bucket                 string // offset from the fixture's base, e.g. "00:00"
	open, high, low, close string
	extra                  string // ticks or volume/candles
	last                   string // offset of the last row
}

// readCandles reads an aggregate in a fixed shape, with times as offsets
// from base so the expectations read like the fixture.
func readCandles(t *testing.T, conn *pgx.Conn, base time.Time, query string) []candle {
	t.Helper()
	rows, err := conn.Query(context.Background(), query)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (candle, error) {
		var c candle
		var bucket, last time.Time
		err := r.Scan(&c.group, &bucket, &c.open, &c.high, &c.low, &c.close, &c.extra, &last)
		c.bucket = offset(base, bucket)
		c.last = offset(base, last)
		return c, err
	})
	require.NoError(t, err)
	return out
}

func offset(base, t time.Time) string {
	d := t.Sub(base)
	return time.Time{}.Add(d).Format("15:04:05") + map[bool]string{true: "+1d", false: ""}[d >= 24*time.Hour]
}

func TestContinuousAggregatesGiveHandComputedOHLC(t *testing.T) {
	conn := connect(t, timescaleDatabase(t))
	ctx := context.Background()
	apply(t, conn, shipped(t), schema.ApplyOptions{})

	// Yesterday midnight: recent enough that no retention or columnstore
	// policy touches the rows while the test runs.
	var base time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT date_trunc('day', now() - interval '1 day')").Scan(&base))

	// Ticks, deliberately not in time order: first and last go by time.
	_, err := conn.Exec(ctx, `
INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, source, attribution)
SELECT $1::timestamptz + at::interval, 'bitcoin', 'BTC', ex, price, 'test', 'test'
FROM (VALUES
  ('00:00:50', 'binance', 90.00000001),
  ('00:00:10', 'binance', 100),
  ('00:01:05', 'binance', 111.5),
  ('00:00:59', 'binance', 110),
  ('00:00:20', 'binance', 120),
  ('01:30:00', 'binance', 200),
  ('00:00:30', 'kraken',  95.12345678)
) AS f(at, ex, price)`, base)
	require.NoError(t, err)
	refresh(t, conn, "crypto_prices_1m", "crypto_prices_1h", "crypto_prices_1d")

	const pricesQuery = `SELECT coin_id || '/' || exchange_id, bucket, open::text, high::text, low::text, close::text, ticks::text, last FROM %s ORDER BY 1, 2`
	q := func(view string) string { return fmt.Sprintf(pricesQuery, view) }
	assert.Equal(t, []candle{
		{"bitcoin/binance", "00:00:00", "100.00000000", "120.00000000", "90.00000001", "110.00000000", "4", "00:00:59"},
		{"bitcoin/binance", "00:01:00", "111.50000000", "111.50000000", "111.50000000", "111.50000000", "1", "00:01:05"},
		{"bitcoin/binance", "01:30:00", "200.00000000", "200.00000000", "200.00000000", "200.00000000", "1", "01:30:00"},
		{"bitcoin/kraken", "00:00:00", "95.12345678", "95.12345678", "95.12345678", "95.12345678", "1", "00:00:30"},
	}, readCandles(t, conn, base, q("crypto_prices_1m")))
	assert.Equal(t, []candle{
		{"bitcoin/binance", "00:00:00", "100.00000000", "120.00000000", "90.00000001", "111.50000000", "5", "00:01:05"},
		{"bitcoin/binance", "01:00:00", "200.00000000", "200.00000000", "200.00000000", "200.00000000", "1", "01:30:00"},
		{"bitcoin/kraken", "00:00:00", "95.12345678", "95.12345678", "95.12345678", "95.12345678", "1", "00:00:30"},
	}, readCandles(t, conn, base, q("crypto_prices_1h")))
	assert.Equal(t, []candle{
		{"bitcoin/binance", "00:00:00", "100.00000000", "200.00000000", "90.00000001", "200.00000000", "6", "01:30:00"},
		{"bitcoin/kraken", "00:00:00", "95.12345678", "95.12345678", "95.12345678", "95.12345678", "1", "00:00:30"},
	}, readCandles(t, conn, base, q("crypto_prices_1d")))

	// Candles of three timeframes: 1m candles roll up among themselves, the
	// 1h candle stays its own group, the 1d candle is not part of 1h.
	_, err = conn.Exec(ctx, `
INSERT INTO crypto_ohlcv (timestamp, coin_id, exchange_id, timeframe, open, high, low, close, volume, source, attribution)
SELECT $1::timestamptz + at::interval, 'bitcoin', 'binance', tf, o, h, l, c, v, 'test', 'test'
FROM (VALUES
  ('00:02', '1m', 14, 14, 8, 9, 0.25),
  ('00:00', '1m', 10, 12, 9, 11, 1.5),
  ('00:01', '1m', 11, 15, 10, 14, 2.25),
  ('00:00', '1h', 10, 16, 7, 9.5, 100),
  ('00:00', '1d', 10, 30, 5, 25, 5000)
) AS f(at, tf, o, h, l, c, v)`, base)
	require.NoError(t, err)
	refresh(t, conn, "crypto_ohlcv_1h", "crypto_ohlcv_1d")

	const ohlcvQuery = `SELECT coin_id || '/' || exchange_id || '/' || timeframe, bucket, open::text, high::text, low::text, close::text, volume::text || ' in ' || candles, last FROM %s ORDER BY 1, 2`
	want := []candle{
		{"bitcoin/binance/1h", "00:00:00", "10.00000000", "16.00000000", "7.00000000", "9.50000000", "100.00000000 in 1", "00:00:00"},
		{"bitcoin/binance/1m", "00:00:00", "10.00000000", "15.00000000", "8.00000000", "9.00000000", "4.00000000 in 3", "00:02:00"},
	}
	assert.Equal(t, want, readCandles(t, conn, base, fmt.Sprintf(ohlcvQuery, "crypto_ohlcv_1h")))
	assert.Equal(t, append([]candle{
		{"bitcoin/binance/1d", "00:00:00", "10.00000000", "30.00000000", "5.00000000", "25.00000000", "5000.00000000 in 1", "00:00:00"},
	}, want...), readCandles(t, conn, base, fmt.Sprintf(ohlcvQuery, "crypto_ohlcv_1d")))

	// Status shows how far each aggregate is refreshed.
	st, err := schema.Status(ctx, conn, shipped(t))
	require.NoError(t, err)
	require.Len(t, st.Hypertables, 3)
	assert.Contains(t, st.String(), "crypto_prices_1m")
	prices := st.Hypertables[0]
	require.Len(t, prices.ContinuousAggregates, 3)
	for _, a := range prices.ContinuousAggregates {
		if assert.NotNil(t, a.RefreshedUpTo, a.Name) {
			assert.True(t, a.RefreshedUpTo.After(base), a.Name)
		}
		require.Len(t, a.Policies, 1, a.Name)
		assert.Equal(t, "refresh", a.Policies[0].Kind)
	}
}

// The seed promised that the columnstore keeps price history in a tenth of
// its row-store size. 2,000,000 ticks: 50 coins × 8 exchanges, one a second
// for 5,000 seconds, prices on a random walk.
func TestColumnstoreCompressesTwoMillionPricesToATenth(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and compresses 2,000,000 rows")
	}
	conn := connect(t, timescaleDatabase(t))
	ctx := context.Background()
	spec := shipped(t)
	spec.ContinuousAggregates = nil // only the table's storage is measured
	apply(t, conn, spec, schema.ApplyOptions{})

	start := time.Now()
	_, err := conn.Exec(ctx, "SET work_mem = '256MB'")
	require.NoError(t, err)
	// Each series starts at its own price (0.01 to 100,000 USD) and moves by
	// up to ±0.05% every tick. Market cap follows the price and the 24h
	// volume drifts on its own walk, both in whole dollars as CoinGecko
	// reports them; the 24h and 7d changes follow the price. ingested_at is
	// the database default now(), the time of the COPY's transaction, so
	// the rows of one batch (here: one second of ticks) share it.
	tag, err := conn.Exec(ctx, `
INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, market_cap, volume_24h,
                           change_24h, change_7d, source, attribution, ingested_at)
SELECT ts, 'coin-' || c, 'C' || c, 'exchange-' || e,
       round(p, 8), round(p * supply), round(vol),
       round((p / p0 - 1) * 100, 4), round((p / p0 - 1) * 100 + 3.5, 4),
       'coingecko', 'Data provided by CoinGecko',
       ts + interval '1.25 seconds'
FROM (
  SELECT c, e, date_trunc('hour', now() - interval '3 hours') + s * interval '1 second' AS ts,
         p0 * exp(sum(step) OVER w) AS p, p0, supply,
         v0 * exp(sum(vstep) OVER w) AS vol
  FROM (
    SELECT c, e, s,
           (power(10, (c % 9) - 2) * (1 + (c * 7 + e) % 10 / 10.0))::numeric AS p0,
           (1e6 * (c + 1))::numeric AS supply,
           (1e7 * (e + 1))::numeric AS v0,
           ((random() - 0.5) * 0.001)::numeric AS step,
           ((random() - 0.5) * 0.0002)::numeric AS vstep
    FROM generate_series(0, 49) c, generate_series(0, 7) e, generate_series(0, 4999) s
  ) walk
  WINDOW w AS (PARTITION BY c, e ORDER BY s)
) priced`)
	require.NoError(t, err)
	require.EqualValues(t, 2_000_000, tag.RowsAffected())
	t.Logf("generated 2,000,000 rows in %v", time.Since(start).Round(time.Millisecond))

	start = time.Now()
	_, err = conn.Exec(ctx, "SELECT compress_chunk(c) FROM show_chunks('crypto_prices') c")
	require.NoError(t, err)
	t.Logf("compressed in %v", time.Since(start).Round(time.Millisecond))

	st, err := schema.Status(ctx, conn, spec)
	require.NoError(t, err)
	prices := st.Hypertables[0]
	require.Equal(t, "crypto_prices", prices.Table)
	require.Equal(t, len(prices.Chunks), prices.CompressedChunks)
	t.Logf("compression: %d chunk(s), %d bytes before, %d after: compressed size is %.2f%% of uncompressed (ratio %.1f:1)",
		len(prices.Chunks), prices.BeforeBytes, prices.AfterBytes, 100*prices.CompressionRatio, 1/prices.CompressionRatio)
	assert.LessOrEqual(t, prices.CompressionRatio, 0.10, "the seed's claim: at most 10%% of the uncompressed size")

	var rows int64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM crypto_prices").Scan(&rows))
	assert.EqualValues(t, 2_000_000, rows, "compressed rows still read back")
}
