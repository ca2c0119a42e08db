package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	_ "github.com/qicore/qiflow/plugins/timescale_input"

	"github.com/qicore/qiflow/internal/history"
	"github.com/qicore/qiflow/internal/testenv"
	exchangerouter "github.com/qicore/qiflow/plugins/exchange_router"
	"github.com/qicore/qiflow/plugins/replay"
)

// replayColumns are the wire-format columns of a price: what the replay
// benchmark reads and sends.
var replayColumns = []string{"last_updated", "coin_id", "symbol", "exchange_id", "usd_price", "market_cap", "volume_24h", "change_24h", "change_7d", "source", "attribution"}

// replayExchanges are known to the router's default config.
var replayExchanges = []string{"binance", "coinbase", "kraken", "bybit", "okx", "kucoin", "bitfinex", "bitstamp"}

// replayPartitions is the partition count of the replay topics.
const replayPartitions = 12

// BenchmarkReplay measures, in one run, on one range of min(QIFLOW_BENCH_ROWS,
// 1M) price rows of 400 series:
//
//   - copy-read: a server-side COPY (SELECT ... ORDER BY time, key) TO
//     STDOUT of the range, discarded: the database's read limit;
//   - produce: a raw franz-go produce of the replay's messages, encoded and
//     placed beforehand: the broker's write limit;
//   - replay: `qiflow replay`'s core (range reader → router placement →
//     produce, with checkpoints);
//   - input-drop: the timescale input into a drop output: the read path
//     alone, through Benthos.
//
// Rounds interleave the cases (QIFLOW_BENCH_ROUNDS, default 3) and each
// metric is the median. replay-vs-limit is replay / min(copy-read, produce);
// the target is 0.8. pg-ms/krow is the CPU of the PostgreSQL backends per
// 1,000 rows read; client-ms/krow that of this process, which also runs the
// in-process kfake broker.
func BenchmarkReplay(b *testing.B) {
	n := min(benchRows, 1_000_000)
	rounds := envInt("QIFLOW_BENCH_ROUNDS", 3)
	dsn, kind := pricesTable(b)
	ticks := (n + 399) / 400
	exec(b, dsn, `
		INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, market_cap, volume_24h, change_24h, change_7d, source, attribution)
		SELECT to_timestamp($1::bigint / 1000.0) + k * interval '1 second', 'coin-' || (s % 50), 'C' || (s % 50), ($2::text[])[s / 50 + 1],
		       100 + (s * 7919 + k) % 9000 + ((s * 104729 + k * 7) % 100000000) / 100000000.0,
		       1000000000 + k + 0.01 * (s % 100), 5000000 + k + 0.01 * (k % 100), (k % 20) + 0.0001 * (s % 10000), -(k % 30) - 0.0001 * (k % 10000),
		       'bench', 'qiflow benchmark'
		FROM generate_series(0, $3 - 1) AS k, generate_series(0, 399) AS s`, benchStart, replayExchanges, ticks)
	exec(b, dsn, `ANALYZE crypto_prices`)
	from := time.UnixMilli(benchStart).UTC()
	to := from.Add(time.Duration(ticks) * time.Second)
	rng := history.Range{Table: "crypto_prices", Columns: replayColumns, From: from, To: to, PageSize: envInt("QIFLOW_BENCH_PAGE", history.DefaultPageSize)}

	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	broker := testenv.NewBroker(b)
	placer, err := exchangerouter.NewPlacer(fmt.Sprintf("topic: replay\npartitions: %d\nunknown_exchange: default", replayPartitions))
	if err != nil {
		b.Fatal(err)
	}
	records := encodeReplay(b, pool, rng, placer)
	total := len(records)
	b.Logf("%d rows of %s (%s) in [%s, %s)", total, "crypto_prices", kind, from.Format(time.RFC3339), to.Format(time.RFC3339))

	pgPID := testenv.PostmasterPID(b)
	measure := func(run func()) (rate, pgMS, clientMS float64) {
		pg0, err := clusterCPU(pgPID)
		if err != nil {
			b.Fatal(err)
		}
		me0, err := processCPU(os.Getpid())
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		run()
		elapsed := time.Since(start)
		pg1, _ := clusterCPU(pgPID)
		me1, _ := processCPU(os.Getpid())
		krows := float64(total) / 1000
		return float64(total) / elapsed.Seconds(), float64((pg1 - pg0).Milliseconds()) / krows, float64((me1 - me0).Milliseconds()) / krows
	}

	cases := []struct {
		name string
		run  func(round int)
	}{
		{"copy-read", func(int) { copyRead(b, pool, from, to) }},
		{"produce", func(round int) { rawProduce(b, broker, fmt.Sprintf("produce-%d", round), records) }},
		{"replay", func(round int) { runReplay(b, broker, pool, rng, fmt.Sprintf("replay-%d", round), total) }},
		{"input-drop", func(int) { inputToDrop(b, dsn, from, to, total) }},
	}
	rates := map[string][]float64{}
	b.ResetTimer()
	for range b.N {
		for round := range rounds {
			for _, c := range cases {
				rate, pg, client := measure(func() { c.run(round) })
				rates[c.name] = append(rates[c.name], rate)
				rates[c.name+"-pg"] = append(rates[c.name+"-pg"], pg)
				rates[c.name+"-client"] = append(rates[c.name+"-client"], client)
			}
		}
	}
	b.StopTimer()
	for _, c := range cases {
		b.ReportMetric(median(rates[c.name]), c.name+"-rows/s")
		b.ReportMetric(median(rates[c.name+"-pg"]), c.name+"-pg-ms/krow")
		b.ReportMetric(median(rates[c.name+"-client"]), c.name+"-client-ms/krow")
	}
	limit := min(median(rates["copy-read"]), median(rates["produce"]))
	b.ReportMetric(median(rates["replay"])/limit, "replay-vs-limit")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// encodeReplay reads the range once and places every message, for the raw
// produce case.
func encodeReplay(b *testing.B, pool *pgxpool.Pool, rng history.Range, placer *exchangerouter.Placer) []*kgo.Record {
	rd, err := history.NewReader(context.Background(), pool, rng)
	if err != nil {
		b.Fatal(err)
	}
	var records []*kgo.Record
	for {
		page, err := rd.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return records
		}
		if err != nil {
			b.Fatal(err)
		}
		for _, row := range page {
			_, key, partition, msg, err := placer.Place(row.Message)
			if err != nil {
				b.Fatal(err)
			}
			records = append(records, &kgo.Record{Key: []byte(key), Value: msg, Partition: partition})
		}
	}
}

// copyRead runs the reader's query as one server-side COPY, to nowhere.
func copyRead(b *testing.B, pool *pgxpool.Pool, from, to time.Time) {
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	cols := make([]string, len(replayColumns))
	for i, c := range replayColumns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	sql := fmt.Sprintf(`COPY (SELECT %s FROM crypto_prices WHERE last_updated >= '%s' AND last_updated < '%s'
		ORDER BY last_updated, coin_id, exchange_id) TO STDOUT (FORMAT binary)`,
		strings.Join(cols, ", "), from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	if _, err := conn.Conn().PgConn().CopyTo(context.Background(), io.Discard, sql); err != nil {
		b.Fatal(err)
	}
}

// replayClient is the client of both produce cases, with the replay's
// options.
func replayClient(b *testing.B, broker *testenv.Broker) *kgo.Client {
	cl, err := kgo.NewClient(append(replay.ProducerOptions(), kgo.SeedBrokers(broker.Seeds()...))...)
	if err != nil {
		b.Fatal(err)
	}
	return cl
}

// rawProduce produces the pre-encoded records into a fresh topic and
// waits for every acknowledgement.
func rawProduce(b *testing.B, broker *testenv.Broker, topic string, records []*kgo.Record) {
	broker.CreateTopic(b, topic, replayPartitions)
	defer deleteTopic(b, broker, topic)
	cl := replayClient(b, broker)
	defer cl.Close()
	var failed error
	for _, r := range records {
		rec := &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Partition: r.Partition}
		cl.Produce(context.Background(), rec, func(_ *kgo.Record, err error) {
			if err != nil && failed == nil {
				failed = err
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil || failed != nil {
		b.Fatal(err, failed)
	}
}

func runReplay(b *testing.B, broker *testenv.Broker, pool *pgxpool.Pool, rng history.Range, topic string, want int) {
	broker.CreateTopic(b, topic, replayPartitions)
	defer deleteTopic(b, broker, topic)
	placer, err := exchangerouter.NewPlacer(fmt.Sprintf("topic: %s\npartitions: %d\nunknown_exchange: default", topic, replayPartitions))
	if err != nil {
		b.Fatal(err)
	}
	cl := replayClient(b, broker)
	defer cl.Close()
	sum, err := replay.Run(context.Background(), replay.Job{DB: pool, Client: cl, Range: rng, Placer: placer, Checkpoint: "bench " + topic})
	if err != nil {
		b.Fatal(err)
	}
	if sum.Rows != int64(want) {
		b.Fatalf("replayed %d rows, want %d", sum.Rows, want)
	}
}

func deleteTopic(b *testing.B, broker *testenv.Broker, topic string) {
	if _, err := broker.Admin(b).DeleteTopics(context.Background(), topic); err != nil {
		b.Logf("delete %s: %v", topic, err)
	}
}

// inputToDrop runs the timescale input over the range into a drop output;
// the input's checkpoint proves every row was read.
func inputToDrop(b *testing.B, dsn string, from, to time.Time, want int) {
	name := fmt.Sprintf("bench input %d", time.Now().UnixNano())
	sb := service.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: warn"); err != nil {
		b.Fatal(err)
	}
	if err := sb.AddInputYAML(fmt.Sprintf("timescale:\n  dsn: %q\n  table: crypto_prices\n  columns: [ %s ]\n  from: %s\n  to: %s\n  checkpoint: %q\n",
		dsn, strings.Join(replayColumns, ", "), from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano), name)); err != nil {
		b.Fatal(err)
	}
	if err := sb.AddOutputYAML("drop: {}"); err != nil {
		b.Fatal(err)
	}
	s, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Run(context.Background()); err != nil {
		b.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	var got int
	if err := conn.QueryRow(context.Background(), `SELECT rows FROM qiflow_history_checkpoints WHERE name = $1`, name).Scan(&got); err != nil || got != want {
		b.Fatalf("input read %d rows (%v), want %d", got, err, want)
	}
}
