package timescale_output

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// backendCPU returns the CPU time the database's client backends used so
// far, from /proc: utime + stime of each, in clock ticks of 10 ms. The
// backends of a pool live as long as the pool, so a difference over a run
// is the run's cost.
func backendCPU(tb testing.TB, dsn string) (ticks int64) {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(),
		"SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()")
	if err != nil {
		tb.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		tb.Fatal(err)
	}
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command, which is in parentheses: utime and
		// stime are the 14th and 15th fields of the line.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
		u, _ := strconv.ParseInt(fields[11], 10, 64)
		s, _ := strconv.ParseInt(fields[12], 10, 64)
		ticks += u + s
	}
	return ticks
}

// BenchmarkConflictPaths measures what each way of writing rows that may
// exist already costs the database, per 1,000 rows kept (CPU of the
// backends, from /proc), and rows/s: 100,000 price
// rows in batches of 2,000, each batch with 2 % re-sends of rows written
// before, into the shipped crypto_prices (a hypertable with TimescaleDB),
// through (a) the lookup of stored keys and a COPY of the rest, and (b) a
// staging table and INSERT … ON CONFLICT DO NOTHING; and, for scale, (c) a
// plain COPY of the same rows without re-sends. Rounds are interleaved;
// the figures are medians.
func BenchmarkConflictPaths(b *testing.B) {
	const rows, batchSize, rounds = 100_000, 2000, 3
	rng := rand.New(rand.NewPCG(11, 12))
	var batches []service.MessageBatch
	var plain []service.MessageBatch
	for start := 0; start < rows; start += batchSize {
		var batch, clean service.MessageBatch
		for i := start; i < start+batchSize; i++ {
			batch = append(batch, price(fmt.Sprintf("coin%d", i%50), i/50, "1.5"))
			clean = append(clean, price(fmt.Sprintf("coin%d", i%50), i/50, "1.5"))
			if start > 0 && rng.IntN(50) == 0 {
				j := rng.IntN(start)
				batch = append(batch, price(fmt.Sprintf("coin%d", j%50), j/50, "1.5"))
			}
		}
		batches, plain = append(batches, batch), append(plain, clean)
	}
	type figures struct{ cpu, rate []float64 }
	results := map[string]*figures{}
	copyOnly := func(c *copier, ctx context.Context, rows []row) error {
		_, err := c.copy(ctx, rows)
		return err
	}
	lookup := func(c *copier, ctx context.Context, rows []row) error {
		_, err := c.copyNew(ctx, rows, &pathStats{})
		return err
	}
	stage := func(c *copier, ctx context.Context, rows []row) error {
		_, err := c.stageAndInsert(ctx, rows)
		return err
	}
	cases := []struct {
		name  string
		data  []service.MessageBatch
		write func(*copier, context.Context, []row) error
	}{
		{"a_lookup_then_copy", batches, lookup},
		{"b_stage_and_insert", batches, stage},
		{"c_plain_copy_no_resends", plain, copyOnly},
	}
	for round := range rounds {
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/round%d", c.name, round), func(b *testing.B) {
				for b.Loop() {
					dsn := database(b)
					o := newOutput(b, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\npool_size: 2\n", dsn))
					before := backendCPU(b, dsn)
					started := time.Now()
					for _, batch := range c.data {
						failed := map[int]error{}
						enc := o.encode(batch, failed)
						rows, _ := dedupe(enc, enc.finish(), o.key, conflictDoNothing, failed)
						if err := c.write(o.copier, context.Background(), rows); err != nil {
							b.Fatal(err)
						}
						enc.release()
					}
					took := time.Since(started)
					cpu := float64(backendCPU(b, dsn)-before) * 10 / (rows / 1000)
					f := results[c.name]
					if f == nil {
						f = &figures{}
						results[c.name] = f
					}
					f.cpu, f.rate = append(f.cpu, cpu), append(f.rate, rows/took.Seconds())
					b.ReportMetric(cpu, "backend-ms/1000rows")
					b.ReportMetric(rows/took.Seconds(), "rows/s")
				}
			})
		}
	}
	median := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	fmt.Printf("\n%-28s %24s %12s\n", "conflict path", "backend CPU ms/1000 rows", "rows/s")
	for _, c := range cases {
		f := results[c.name]
		fmt.Printf("%-28s %24.1f %12.0f   (medians of %d rounds; CPU %v)\n", c.name, median(f.cpu), median(f.rate), len(f.cpu), f.cpu)
	}
}
