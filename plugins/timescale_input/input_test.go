package timescaleinput

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/qicore/qiflow/internal/schema"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// pricesDB is a fresh database with the shipped schema.
func pricesDB(t *testing.T) (string, *pgx.Conn) {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Database(t)
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	spec, err := schema.Load("../../pipelines/schema.yaml")
	require.NoError(t, err)
	_, err = schema.Apply(ctx, conn, spec, schema.ApplyOptions{})
	require.NoError(t, err)
	return dsn, conn
}

// insertPrices inserts n rows, six series a timestamp, 100 ms apart,
// starting at start; usd_price of row i is i+1 cents... in units of 1e-8.
func insertPrices(t *testing.T, conn *pgx.Conn, start time.Time, first, n int) {
	t.Helper()
	_, err := conn.Exec(context.Background(), `
		INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, source, attribution)
		SELECT $1::timestamptz + (i / 6) * interval '100 milliseconds',
		       'coin-' || (i % 3), 'C' || (i % 3), 'ex-' || ((i / 3) % 2),
		       (i + 1) * 0.00000001, 'test', 'qiflow'
		FROM generate_series($2::int, $2::int + $3 - 1) AS i`, start, first, n)
	require.NoError(t, err)
}

type price struct {
	LastUpdated string `json:"lastUpdated"`
	CoinID      string `json:"coinId"`
	ExchangeID  string `json:"exchangeId"`
	USDPrice    string `json:"usdPrice"`
}

// collected is what a stream's consumer received.
type collected struct {
	mu     sync.Mutex
	prices []price
	meta   []map[string]string
}

func (c *collected) add(t *testing.T, batch service.MessageBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range batch {
		b, err := m.AsBytes()
		require.NoError(t, err)
		var p price
		require.NoError(t, json.Unmarshal(b, &p), string(b))
		c.prices = append(c.prices, p)
		meta := map[string]string{}
		_ = m.MetaWalk(func(k, v string) error { meta[k] = v; return nil })
		c.meta = append(c.meta, meta)
	}
}

func (c *collected) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.prices)
}

// stream builds a stream from the input YAML whose consumer is fn.
func stream(t *testing.T, inputYAML string, fn func(context.Context, service.MessageBatch) error) *service.Stream {
	t.Helper()
	b := service.NewStreamBuilder()
	require.NoError(t, b.SetLoggerYAML("level: warn"))
	require.NoError(t, b.AddInputYAML(inputYAML))
	require.NoError(t, b.AddBatchConsumerFunc(fn))
	s, err := b.Build()
	require.NoError(t, err)
	return s
}

var t0 = time.Now().UTC().Add(-time.Hour).Truncate(time.Second)

func TestRangeModeReadsTheRangeInOrderAndEnds(t *testing.T) {
	dsn, conn := pricesDB(t)
	insertPrices(t, conn, t0, 0, 600) // 100 timestamps, 10 s
	var got collected
	s := stream(t, fmt.Sprintf(`
timescale:
  dsn: %q
  table: crypto_prices
  columns: [ last_updated, coin_id, exchange_id, usd_price ]
  from: %s
  to: %s
  page_size: 50
`, dsn, t0.Add(2*time.Second).Format(time.RFC3339), t0.Add(7*time.Second).Format(time.RFC3339)),
		func(_ context.Context, b service.MessageBatch) error { got.add(t, b); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, s.Run(ctx), "the input ends after the range")

	require.Len(t, got.prices, 300, "50 timestamps × 6 series")
	var prev time.Time
	for i, p := range got.prices {
		pt, err := time.Parse(time.RFC3339Nano, p.LastUpdated)
		require.NoError(t, err)
		assert.False(t, pt.Before(prev), "time order")
		prev = pt
		assert.Equal(t, "crypto_prices", got.meta[i]["timescale_table"])
		at, err := time.Parse(time.RFC3339Nano, got.meta[i]["timescale_time"])
		require.NoError(t, err)
		assert.True(t, at.Equal(pt))
	}
	assert.Equal(t, "0.00000121", got.prices[0].USDPrice, "row 120, the first of the range, exact")
}

func TestACheckpointedInputResumesWithoutRepeatingOrSkipping(t *testing.T) {
	dsn, conn := pricesDB(t)
	insertPrices(t, conn, t0, 0, 1000)
	conf := fmt.Sprintf(`
timescale:
  dsn: %q
  table: crypto_prices
  columns: [ last_updated, coin_id, exchange_id, usd_price ]
  page_size: 70
  checkpoint: resume-test
`, dsn)

	// First run: three batches are written, the fourth fails until the
	// stream is stopped.
	var first collected
	batches := 0
	var once sync.Once
	stopped := make(chan struct{})
	s := stream(t, conf, func(ctx context.Context, b service.MessageBatch) error {
		batches++
		if batches <= 3 {
			first.add(t, b)
			return nil
		}
		once.Do(func() { close(stopped) })
		<-ctx.Done()
		return errors.New("the output is down")
	})
	go func() { _ = s.Run(context.Background()) }()
	select {
	case <-stopped:
	case <-time.After(time.Minute):
		t.Fatal("the fourth batch never came")
	}
	_ = s.StopWithin(10 * time.Second) // the stuck batch cannot finish: a timeout is expected
	require.Equal(t, 210, first.len())

	var n int64
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT rows FROM qiflow_history_checkpoints WHERE name = 'resume-test'`).Scan(&n))
	assert.EqualValues(t, 210, n, "the checkpoint is the acknowledged prefix")

	var second collected
	s = stream(t, conf, func(_ context.Context, b service.MessageBatch) error { second.add(t, b); return nil })
	ctx, cancelRun := context.WithTimeout(context.Background(), time.Minute)
	defer cancelRun()
	require.NoError(t, s.Run(ctx))

	all := append(append([]price{}, first.prices...), second.prices...)
	require.Equal(t, 1000, len(all), "every row once over the two runs")
	seen := map[string]bool{}
	for _, p := range all {
		k := p.LastUpdated + p.CoinID + p.ExchangeID
		assert.False(t, seen[k], "repeated: %s", k)
		seen[k] = true
	}
}

func TestTailModePicksUpRowsInsertedWhileItRuns(t *testing.T) {
	dsn, conn := pricesDB(t)
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	insertPrices(t, conn, start, 0, 60)
	var got collected
	s := stream(t, fmt.Sprintf(`
timescale:
  dsn: %q
  table: crypto_prices
  mode: tail
  from: %s
  poll_interval: 50ms
  settle: 0s
`, dsn, start.Format(time.RFC3339)), func(_ context.Context, b service.MessageBatch) error { got.add(t, b); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, 60, &got)
	// Rows of a later time, inserted while the tail runs.
	insertPrices(t, conn, start.Add(30*time.Second), 0, 30)
	waitFor(t, 90, &got)
	last := got.prices[len(got.prices)-1]
	assert.Equal(t, start.Add(30*time.Second+400*time.Millisecond).Format("2006-01-02T15:04:05.999999Z07:00"), last.LastUpdated)
	select {
	case err := <-done:
		t.Fatalf("a tail does not end: %v", err)
	default:
	}
}

func waitFor(t *testing.T, n int, got *collected) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for got.len() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d rows of %d within a minute", got.len(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	assert.Equal(t, n, got.len(), "no more than the rows inserted")
}

func TestConfigErrors(t *testing.T) {
	for yaml, want := range map[string]string{
		"table: t\npage_size: 0":      "page_size",
		"table: t\nfrom: yesterday":   "from",
		"table: t\npoll_interval: 0s": "poll_interval",
		"table: t\nmode: backwards":   "backwards",
	} {
		conf, err := inputSpec().ParseYAML(yaml, nil)
		if err == nil {
			_, err = newInputFromConfig(conf, service.MockResources())
		}
		assert.ErrorContains(t, err, want, yaml)
	}
}
