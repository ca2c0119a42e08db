package history_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/history"
	"github.com/qicore/qiflow/internal/schema"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pricesDB is a fresh database with the shipped schema, and a connection.
func pricesDB(t *testing.T) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testenv.Database(t))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	spec, err := schema.Load("../../pipelines/schema.yaml")
	require.NoError(t, err)
	_, err = schema.Apply(ctx, conn, spec, schema.ApplyOptions{})
	require.NoError(t, err)
	return conn
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// insertPrices inserts n prices over 3 coins × 2 exchanges; rows of one
// series tick every 10 ms, so each timestamp holds six rows and a page
// boundary falls between rows of one timestamp.
func insertPrices(t *testing.T, conn *pgx.Conn, start time.Time, n int) {
	t.Helper()
	_, err := conn.Exec(context.Background(), `
		INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, market_cap, source, attribution)
		SELECT $1::timestamptz + (i / 6) * interval '10 milliseconds',
		       'coin-' || (i % 3), 'C' || (i % 3), 'ex-' || ((i / 3) % 2),
		       (i + 1) * 0.00000001, CASE WHEN i % 2 = 0 THEN 1234567890123.45 END,
		       'test', 'a "quoted" \ attribution'
		FROM generate_series(0, $2 - 1) AS i`, start, n)
	require.NoError(t, err)
}

type price struct {
	LastUpdated string  `json:"lastUpdated"`
	CoinID      string  `json:"coinId"`
	ExchangeID  string  `json:"exchangeId"`
	USDPrice    string  `json:"usdPrice"`
	MarketCap   *string `json:"marketCap"`
	Attribution string  `json:"attribution"`
}

func readAll(t *testing.T, rd *history.Reader) []history.Row {
	t.Helper()
	var all []history.Row
	for {
		page, err := rd.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return all
		}
		require.NoError(t, err)
		for _, r := range page {
			r.Message = append([]byte(nil), r.Message...)
			all = append(all, r)
		}
	}
}

func TestReadsEveryRowOfTheRangeOnceInTimeOrderWithExactValues(t *testing.T) {
	conn := pricesDB(t)
	insertPrices(t, conn, t0, 600) // 100 timestamps
	from, to := t0.Add(200*time.Millisecond), t0.Add(700*time.Millisecond)
	rd, err := history.NewReader(context.Background(), conn, history.Range{
		Table: "crypto_prices", From: from, To: to, PageSize: 7,
		Columns: []string{"last_updated", "coin_id", "exchange_id", "usd_price", "market_cap", "attribution"},
	})
	require.NoError(t, err)
	assert.Equal(t, "last_updated", rd.TimeColumn())
	assert.Equal(t, []string{"coin_id", "exchange_id"}, rd.KeyColumns())
	remaining, err := rd.Remaining(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 300, remaining)

	rows := readAll(t, rd)
	require.Len(t, rows, 300, "50 timestamps × 6 series")
	seen := map[string]bool{}
	for i, r := range rows {
		var p price
		require.NoError(t, json.Unmarshal(r.Message, &p), string(r.Message))
		at, err := time.Parse(time.RFC3339Nano, p.LastUpdated)
		require.NoError(t, err)
		assert.True(t, !at.Before(from) && at.Before(to), "in range: %s", p.LastUpdated)
		assert.Equal(t, r.Time, at)
		key := p.LastUpdated + "/" + p.CoinID + "/" + p.ExchangeID
		assert.False(t, seen[key], "once: %s", key)
		seen[key] = true
		if i > 0 {
			prev := rows[i-1]
			assert.True(t, !r.Time.Before(prev.Time), "time order")
		}
		// usd_price was (i+1)·1e-8 for insert index i: exact to the last digit.
		idx := int(at.Sub(t0)/(10*time.Millisecond))*6 + map[string]int{"coin-0/ex-0": 0, "coin-1/ex-0": 1, "coin-2/ex-0": 2, "coin-0/ex-1": 3, "coin-1/ex-1": 4, "coin-2/ex-1": 5}[p.CoinID+"/"+p.ExchangeID]
		assert.Equal(t, decimal8(idx+1), p.USDPrice)
		if idx%2 == 0 {
			require.NotNil(t, p.MarketCap)
			assert.Equal(t, "1234567890123.45", *p.MarketCap)
		} else {
			assert.Nil(t, p.MarketCap, "NULL is null")
		}
		assert.Equal(t, `a "quoted" \ attribution`, p.Attribution)
	}
}

// decimal8 is n·10⁻⁸ with eight places, as numeric(20,8) prints it.
func decimal8(n int) string {
	s := []byte("0.00000000")
	for i := len(s) - 1; n > 0; i-- {
		if s[i] == '.' {
			i--
		}
		s[i] = byte('0' + n%10)
		n /= 10
	}
	return string(s)
}

func TestAReaderStartedAfterAPositionNeitherRepeatsNorSkips(t *testing.T) {
	conn := pricesDB(t)
	insertPrices(t, conn, t0, 120)
	// With every column, and with neither the time nor the keys emitted:
	// the position is read from the emitted values or selected apart.
	for _, columns := range [][]string{nil, {"usd_price", "symbol"}} {
		r := history.Range{Table: "crypto_prices", PageSize: 5, Columns: columns}
		full, err := history.NewReader(context.Background(), conn, r)
		require.NoError(t, err)
		want := readAll(t, full)
		require.Len(t, want, 120)

		for _, cut := range []int{1, 5, 7, 59, 119} { // inside and at page ends, between rows of one time
			pos := want[cut-1].Position()
			r.After = &pos
			rd, err := history.NewReader(context.Background(), conn, r)
			require.NoError(t, err)
			rest := readAll(t, rd)
			require.Len(t, rest, 120-cut, "after row %d, columns %v", cut, columns)
			for i := range rest {
				assert.Equal(t, string(want[cut+i].Message), string(rest[i].Message))
				assert.Equal(t, want[cut+i].Key, rest[i].Key)
			}
		}
	}
}

func TestFiltersAreParametersNeverSQL(t *testing.T) {
	conn := pricesDB(t)
	insertPrices(t, conn, t0, 60)
	rd, err := history.NewReader(context.Background(), conn, history.Range{
		Table: "crypto_prices",
		Match: []history.Match{{Column: "coin_id", Value: "coin-1"}, {Column: "exchange_id", Value: "ex-0"}},
		Where: "usd_price > $1", Args: []any{"0.00000010"},
	})
	require.NoError(t, err)
	rows := readAll(t, rd)
	assert.Len(t, rows, 8, "coin-1 on ex-0: indexes 1, 7, ..., 55; those above 1e-7: 8 of them")

	hostile := "coin-1'; DROP TABLE crypto_prices; --"
	rd, err = history.NewReader(context.Background(), conn, history.Range{
		Table: "crypto_prices", Match: []history.Match{{Column: "coin_id", Value: hostile}},
	})
	require.NoError(t, err)
	assert.Empty(t, readAll(t, rd))
	var n int
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM crypto_prices`).Scan(&n))
	assert.Equal(t, 60, n, "the table is still there")

	_, err = history.NewReader(context.Background(), conn, history.Range{Table: `crypto_prices"; DROP TABLE x; --`})
	assert.ErrorContains(t, err, "does not exist")
}

func TestFollowReadsRowsInsertedWhileItRuns(t *testing.T) {
	conn := pricesDB(t)
	now := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Minute)
	insertPrices(t, conn, now, 12)
	rd, err := history.Follow(context.Background(), conn, history.Range{Table: "crypto_prices", From: now}, 0)
	require.NoError(t, err)
	page, err := rd.Next(context.Background())
	require.NoError(t, err)
	assert.Len(t, page, 12)
	page, err = rd.Next(context.Background())
	require.NoError(t, err, "a caught-up tail is not at its end")
	assert.Empty(t, page)

	insertPrices(t, conn, now.Add(time.Second), 6)
	page, err = rd.Next(context.Background())
	require.NoError(t, err)
	assert.Len(t, page, 6)
}

func TestFollowWaitsForRowsToSettle(t *testing.T) {
	conn := pricesDB(t)
	now := time.Now().UTC()
	insertPrices(t, conn, now.Add(-time.Hour), 6)
	insertPrices(t, conn, now.Add(time.Hour), 6) // from the future: not settled
	rd, err := history.Follow(context.Background(), conn, history.Range{Table: "crypto_prices"}, time.Minute)
	require.NoError(t, err)
	page, err := rd.Next(context.Background())
	require.NoError(t, err)
	assert.Len(t, page, 6, "only rows a minute old are read")
}

func TestATableWithoutKeyNeedsKeyColumns(t *testing.T) {
	conn := pricesDB(t)
	_, err := conn.Exec(context.Background(), `CREATE TABLE ticks (at timestamptz NOT NULL, v numeric)`)
	require.NoError(t, err)
	_, err = history.NewReader(context.Background(), conn, history.Range{Table: "ticks", TimeColumn: "at"})
	assert.ErrorIs(t, err, history.ErrNoKey)
}

func TestCheckpointsRoundTrip(t *testing.T) {
	conn := pricesDB(t)
	ctx := context.Background()
	cps, err := history.OpenCheckpoints(ctx, conn)
	require.NoError(t, err)
	cp, err := cps.Load(ctx, "a")
	require.NoError(t, err)
	assert.Nil(t, cp)
	pos := history.Position{Time: t0.Add(123 * time.Microsecond), Key: []string{"bitcoin", "binance"}}
	require.NoError(t, cps.Save(ctx, "a", "crypto_prices", pos, 42))
	cp, err = cps.Load(ctx, "a")
	require.NoError(t, err)
	require.NotNil(t, cp)
	assert.True(t, pos.Time.Equal(cp.Position.Time))
	assert.Equal(t, pos.Key, cp.Position.Key)
	assert.EqualValues(t, 42, cp.Rows)
	require.NoError(t, cps.Delete(ctx, "a"))
	cp, err = cps.Load(ctx, "a")
	require.NoError(t, err)
	assert.Nil(t, cp)
}

func TestWireKey(t *testing.T) {
	for col, key := range map[string]string{
		"usd_price": "usdPrice", "volume_24h": "volume24h", "market_cap_change_24h": "marketCapChange24h",
		"coin_id": "coinId", "timestamp": "timestamp", "active_cryptocurrencies": "activeCryptocurrencies",
	} {
		assert.Equal(t, key, history.WireKey(col))
	}
}

func TestALimitStopsTheReadAcrossPages(t *testing.T) {
	conn := pricesDB(t)
	insertPrices(t, conn, t0, 60)
	rd, err := history.NewReader(context.Background(), conn, history.Range{Table: "crypto_prices", PageSize: 7, Limit: 20})
	require.NoError(t, err)
	n, err := rd.Remaining(context.Background())
	require.NoError(t, err)
	assert.EqualValues(t, 20, n)
	assert.Len(t, readAll(t, rd), 20)
}

func TestAFollowWhoseEndHasSettledEnds(t *testing.T) {
	conn := pricesDB(t)
	insertPrices(t, conn, t0, 12)
	rd, err := history.Follow(context.Background(), conn, history.Range{Table: "crypto_prices", From: t0, To: t0.Add(time.Minute)}, 0)
	require.NoError(t, err)
	assert.Len(t, readAll(t, rd), 12, "readAll returns at io.EOF: a tail of a past range ends")
}
