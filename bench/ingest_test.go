// Package bench measures qiflow's ingest path against the limits of the
// machine, in one run, so that ratios are comparable (DESIGN.md,
// Performance). Run it with `make bench`.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// Sizes of the runs; QIFLOW_BENCH_ROWS overrides the default million.
var (
	benchRows   = envInt("QIFLOW_BENCH_ROWS", 1_000_000)
	insertRows  = min(benchRows, 200_000)
	latencyRate = 5000
	latencyFor  = 10 * time.Second
)

func envInt(name string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(name), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// message is the i-th price message: 50 coins × 8 exchanges, one tick per
// second, random-walk-ish prices with eight decimals.
func message(i int, ts int64) []byte {
	coin, exchange := i%50, (i/50)%8
	return fmt.Appendf(nil, `{"coinId":"coin-%02d","symbol":"C%02d","exchangeId":"exchange-%d","usdPrice":"%d.%08d","marketCap":"%d.%02d","volume24h":"%d.%02d","change24h":"%d.%04d","change7d":"-%d.%04d","lastUpdated":%d,"source":"bench","attribution":"qiflow benchmark"}`,
		coin, coin, exchange, 100+i%9000, i%100000000, 1_000_000_000+i, i%100, 5_000_000+i, i%100, i%20, i%10000, i%30, i%10000, ts)
}

// benchStart is where tick times start: recent enough that the shipped
// retention and columnstore policies leave the rows alone.
var benchStart = time.Now().Add(-2 * time.Hour).Truncate(time.Second).UnixMilli()

func tickTime(i int) int64 { return benchStart + int64(i/400)*1000 }

const createPrices = `
CREATE TABLE crypto_prices (
  last_updated TIMESTAMPTZ NOT NULL, coin_id VARCHAR(64) NOT NULL, symbol VARCHAR(32) NOT NULL,
  exchange_id VARCHAR(64) NOT NULL, usd_price NUMERIC(20,8) NOT NULL, market_cap NUMERIC(24,2),
  volume_24h NUMERIC(24,2), change_24h NUMERIC(10,4), change_7d NUMERIC(10,4), source VARCHAR(64) NOT NULL,
  attribution TEXT NOT NULL, ingested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (last_updated, coin_id, exchange_id))`

// pricesTable creates crypto_prices in a fresh database, as a hypertable
// when TimescaleDB is installed, and reports which.
func pricesTable(b *testing.B) (string, string) {
	dsn := testenv.Database(b)
	exec(b, dsn, createPrices)
	kind := "plain table"
	if testenv.TimescaleAvailable(b, dsn) {
		exec(b, dsn, `SELECT create_hypertable('crypto_prices', by_range('last_updated', INTERVAL '1 day'))`)
		kind = "hypertable"
	}
	return dsn, kind
}

func exec(b *testing.B, dsn, sql string, args ...any) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		b.Fatalf("%s: %v", sql, err)
	}
}

func count(b *testing.B, dsn string) int {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM crypto_prices").Scan(&n); err != nil {
		return -1
	}
	return n
}

// rows decodes the benchmark messages once, for the cases that start from
// rows in memory.
func rows(b *testing.B, n int) [][]any {
	out := make([][]any, n)
	for i := range n {
		row, err := marketdata.Price.Decode(message(i, tickTime(i)))
		if err != nil {
			b.Fatal(err)
		}
		out[i] = row
	}
	return out
}

// results collects the rate of each case for the final table.
type results struct {
	mu    sync.Mutex
	rates map[string]float64
	notes map[string]string
}

func (r *results) set(name string, rate float64, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rates[name], r.notes[name] = rate, note
}

// startQiflow runs bin/qiflow on pipelines/prices.yaml against broker and
// dsn, with its HTTP server (and pprof) on a free loopback port.
func startQiflow(b *testing.B, broker *testenv.Broker, dsn string) (*testenv.Process, int) {
	bin := testenv.BuildBinary(b, "./cmd/qiflow")
	pipeline, err := filepath.Abs(filepath.Join("..", "pipelines", "prices.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	port := testenv.FreePort(b)
	proc := testenv.StartProcess(b, bin,
		[]string{"REDPANDA_BROKERS=" + broker.SeedList(), "DATABASE_URL=" + dsn},
		"run", "--set", fmt.Sprintf("http.address=127.0.0.1:%d", port), "--set", "http.debug_endpoints=true", pipeline)
	return proc, port
}

func stopQiflow(proc *testenv.Process) {
	_ = proc.Signal(syscall.SIGTERM)
	_, _ = proc.Wait(30 * time.Second)
}

// qiflowRun runs qiflow until the group has committed everything on the
// topic, and returns the messages per second.
func qiflowRun(b *testing.B, broker *testenv.Broker, dsn string, messages int) float64 {
	testenv.BuildBinary(b, "./cmd/qiflow") // before the clock starts: the first call builds
	start := time.Now()
	proc, port := startQiflow(b, broker, dsn)
	defer stopQiflow(proc)
	if out := os.Getenv("QIFLOW_BENCH_PPROF"); out != "" {
		go profile(port, out)
	}
	broker.WaitForCommit(b, "qiflow-prices", "crypto-prices", 10*time.Minute, proc.Output)
	return float64(messages) / time.Since(start).Seconds()
}

// profile saves a 5-second CPU profile of the running qiflow to path, for
// naming the hot spot of a run (QIFLOW_BENCH_PPROF=path).
func profile(port int, path string) {
	time.Sleep(2 * time.Second)
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=5", port))
	if err != nil {
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

func produce(b *testing.B, broker *testenv.Broker, n int, duplicateEvery int) int {
	total := n
	if duplicateEvery > 0 {
		total += n / duplicateEvery
	}
	rng := rand.New(rand.NewPCG(1, 2))
	broker.ProduceN(b, "crypto-prices", total, func(i int) *kgo.Record {
		if i >= n {
			j := rng.IntN(n)
			return &kgo.Record{Value: message(j, tickTime(j))}
		}
		return &kgo.Record{Value: message(i, tickTime(i))}
	})
	return total
}

// BenchmarkIngest runs every case of DESIGN.md's Performance section once
// and prints one table with rows/s and ratios to pgx CopyFrom.
func BenchmarkIngest(b *testing.B) {
	res := &results{rates: map[string]float64{}, notes: map[string]string{}}

	b.Run("a_qiflow_end_to_end", func(b *testing.B) {
		qiflowCase(b, res, "(a) qiflow end to end", 0, "rows/s")
	})
	b.Run("b_server_copy_from_file", func(b *testing.B) {
		for b.Loop() {
			dsn, kind := pricesTable(b)
			file := filepath.Join(os.TempDir(), fmt.Sprintf("qiflow-bench-%d.csv", os.Getpid()))
			writeCSV(b, file, rows(b, benchRows))
			defer os.Remove(file)
			start := time.Now()
			exec(b, dsn, fmt.Sprintf(`COPY crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, market_cap, volume_24h, change_24h, change_7d, source, attribution) FROM '%s' (FORMAT csv)`, file))
			rate := float64(benchRows) / time.Since(start).Seconds()
			res.set("(b) server-side COPY FROM file", rate, kind+", one backend")
			b.ReportMetric(rate, "rows/s")
		}
	})
	b.Run("c_pgx_copyfrom_2_conns", func(b *testing.B) {
		for b.Loop() {
			dsn, kind := pricesTable(b)
			data := rows(b, benchRows)
			rate := copyFrom(b, dsn, data, 2)
			res.set("(c) pgx CopyFrom, 2 connections", rate, kind+", rows decoded beforehand")
			b.ReportMetric(rate, "rows/s")
		}
	})
	b.Run("d_multirow_insert_1000", func(b *testing.B) {
		for b.Loop() {
			dsn, kind := pricesTable(b)
			rate := multiRowInsert(b, dsn, rows(b, insertRows), 1000)
			res.set("(d) 1,000-row INSERT, 1 connection", rate, fmt.Sprintf("%s, %d rows", kind, insertRows))
			b.ReportMetric(rate, "rows/s")
		}
	})
	b.Run("e_qiflow_2pct_duplicates", func(b *testing.B) {
		qiflowCase(b, res, "(e) qiflow, 2% replayed duplicates", 50, "msgs/s")
	})
	b.Run("latency_at_5000_msgs", func(b *testing.B) {
		for b.Loop() {
			p50, p99 := latency(b)
			res.set("latency p50 (ms)", p50, "")
			res.set("latency p99 (ms)", p99, fmt.Sprintf("steady %d msgs/s for %v", latencyRate, latencyFor))
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p99, "p99-ms")
		}
	})
	printTable(res)
}

// qiflowCase runs qiflow over benchRows price messages, plus one replayed
// duplicate every duplicateEvery messages when that is not 0, and checks
// that exactly benchRows rows result.
func qiflowCase(b *testing.B, res *results, name string, duplicateEvery int, unit string) {
	for b.Loop() {
		broker := testenv.NewBroker(b, testenv.WithTopics(12, "crypto-prices", "crypto-prices.dlq"))
		n := produce(b, broker, benchRows, duplicateEvery)
		dsn, kind := pricesTable(b)
		rate := qiflowRun(b, broker, dsn, n)
		if got := count(b, dsn); got != benchRows {
			b.Fatalf("%d rows, want %d", got, benchRows)
		}
		res.set(name, rate, fmt.Sprintf("%d msgs → %s", n, kind))
		b.ReportMetric(rate, unit)
	}
}

func printTable(res *results) {
	base := res.rates["(c) pgx CopyFrom, 2 connections"]
	insert := res.rates["(d) 1,000-row INSERT, 1 connection"]
	names := make([]string, 0, len(res.rates))
	for n := range res.rates {
		names = append(names, n)
	}
	slices.Sort(names)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-38s %12s %8s %8s  %s\n", "case", "rows/s", "÷ (c)", "÷ (d)", "notes")
	for _, n := range names {
		rate := res.rates[n]
		if strings.HasPrefix(n, "latency") {
			fmt.Fprintf(&sb, "%-38s %12.1f %8s %8s  %s\n", n, rate, "", "", res.notes[n])
			continue
		}
		ratio := func(d float64) string {
			if d == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2f", rate/d)
		}
		fmt.Fprintf(&sb, "%-38s %12.0f %8s %8s  %s\n", n, rate, ratio(base), ratio(insert), res.notes[n])
	}
	fmt.Print(sb.String())
}

func writeCSV(b *testing.B, path string, data [][]any) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var sb strings.Builder
	for _, row := range data {
		sb.Reset()
		for j, v := range row {
			if j > 0 {
				sb.WriteByte(',')
			}
			switch x := v.(type) {
			case nil:
			case time.Time:
				sb.WriteString(x.Format(time.RFC3339Nano))
			default:
				fmt.Fprint(&sb, textOf(x))
			}
		}
		sb.WriteByte('\n')
		if _, err := f.WriteString(sb.String()); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		b.Fatal(err)
	}
}

func copyFrom(b *testing.B, dsn string, data [][]any, conns int) float64 {
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	cols := marketdata.Price.Columns
	start := time.Now()
	var wg sync.WaitGroup
	chunk := (len(data) + conns - 1) / conns
	for c := range conns {
		part := data[c*chunk : min(len(data), (c+1)*chunk)]
		wg.Go(func() {
			for len(part) > 0 {
				n := min(len(part), 10_000)
				if _, err := pool.CopyFrom(context.Background(), pgx.Identifier{"crypto_prices"}, cols, pgx.CopyFromRows(part[:n])); err != nil {
					b.Error(err)
					return
				}
				part = part[n:]
			}
		})
	}
	wg.Wait()
	return float64(len(data)) / time.Since(start).Seconds()
}

func multiRowInsert(b *testing.B, dsn string, data [][]any, perStatement int) float64 {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	cols := marketdata.Price.Columns
	start := time.Now()
	for len(data) > 0 {
		n := min(len(data), perStatement)
		var sql strings.Builder
		sql.WriteString("INSERT INTO crypto_prices (" + strings.Join(cols, ", ") + ") VALUES ")
		args := make([]any, 0, n*len(cols))
		for i, row := range data[:n] {
			if i > 0 {
				sql.WriteByte(',')
			}
			sql.WriteByte('(')
			for j := range row {
				if j > 0 {
					sql.WriteByte(',')
				}
				fmt.Fprintf(&sql, "$%d", len(args)+1)
				args = append(args, row[j])
			}
			sql.WriteByte(')')
		}
		sql.WriteString(" ON CONFLICT DO NOTHING")
		if _, err := conn.Exec(context.Background(), sql.String(), args...); err != nil {
			b.Fatal(err)
		}
		data = data[n:]
	}
	return float64(insertRows) / time.Since(start).Seconds()
}

// latency produces at a steady rate while qiflow runs, each message stamped
// with its produce time, and reads from the table how long each took to
// reach it: ingested_at (the writing transaction's start) − lastUpdated.
func latency(b *testing.B) (p50, p99 float64) {
	broker := testenv.NewBroker(b, testenv.WithTopics(12, "crypto-prices", "crypto-prices.dlq"))
	dsn, _ := pricesTable(b)
	proc, _ := startQiflow(b, broker, dsn)
	defer stopQiflow(proc)
	proc.WaitForOutput(b, "Writing to table", 30*time.Second)

	cl := broker.Client(b, kgo.ProducerLinger(0))
	total := int(latencyFor.Seconds()) * latencyRate
	interval := time.Second / time.Duration(latencyRate)
	start := time.Now()
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		cl.Produce(context.Background(), &kgo.Record{Topic: "crypto-prices", Value: message(i, time.Now().UnixMilli())}, nil)
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for count(b, dsn) < total && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(context.Background(), `
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)
FROM (SELECT extract(epoch FROM ingested_at - last_updated) * 1000 AS ms FROM crypto_prices) l`).Scan(&p50, &p99)
	if err != nil {
		b.Fatal(err)
	}
	return p50, p99
}

func textOf(v any) string {
	if n, ok := v.(pgtype.Numeric); ok {
		return decimal.String(n)
	}
	return fmt.Sprint(v)
}
