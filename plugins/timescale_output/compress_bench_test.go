package timescale_output

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/testenv"
)

// BenchmarkDirectCompress measures exactly-once writes into the example's
// crypto_prices_log with TimescaleDB's direct compress on COPY off and on:
// 200,000 rows of 400 series (50 coins on 8 exchanges), in batches of
// batchSize rows, as the output writes them. Per case: rows/s, the
// backends' CPU per 1,000 rows from /proc, the table's size once written,
// and with direct compress off, the time and size of compressing the
// chunk afterwards, as the columnstore policy would. Rounds are
// interleaved; the figures are medians.
func BenchmarkDirectCompress(b *testing.B) {
	const rows, rounds = 200_000, 3
	type figures struct{ rate, cpu, size, compressMs, compressedSize []float64 }
	results := map[string]*figures{}
	var names []string
	for _, batchSize := range []int{4000, 40000} {
		var batches []service.MessageBatch
		for start := 0; start < rows; start += batchSize {
			var batch service.MessageBatch
			for i := start; i < start+batchSize; i++ {
				m := service.NewMessage(fmt.Appendf(nil, `{"coinId":"coin-%02d","symbol":"C","exchangeId":"exchange-%d","usdPrice":"%d.%08d","volume24h":"%d.25","lastUpdated":%d,"source":"bench","attribution":"qiflow"}`,
					i%50, (i/50)%8, 100+i%900, i%100000000, 1_000_000+i, baseMillis+int64(i/400)*1000))
				m.MetaSetMut("kafka_topic", "crypto-prices")
				m.MetaSetMut("kafka_partition", int64(0))
				m.MetaSetMut("kafka_offset", int64(i))
				batch = append(batch, m)
			}
			batches = append(batches, batch)
		}
		for round := range rounds {
			for _, direct := range []bool{false, true} {
				name := fmt.Sprintf("batch_%d/direct_compress_%v", batchSize, direct)
				b.Run(fmt.Sprintf("%s/round%d", name, round), func(b *testing.B) {
					for b.Loop() {
						dsn := logDatabase(b)
						testenv.RequireTimescale(b, dsn)
						broker := testenv.NewBroker(b, testenv.WithTopics(1, "crypto-prices.dlq"))
						o := newOutput(b, fmt.Sprintf("dsn: %q\ntable: crypto_prices_log\nformat: price\nexactly_once: true\nmax_in_flight: 1\ndirect_compress: %v\ndead_letter:\n  redpanda:\n    seed_brokers: [ %q ]\n    topic: crypto-prices.dlq\n",
							dsn, direct, broker.SeedList()))
						o.link.SetGroup("bench")
						before := backendCPU(b, dsn)
						started := time.Now()
						for _, batch := range batches {
							if err := o.WriteBatch(context.Background(), batch); err != nil {
								b.Fatal(err)
							}
						}
						took := time.Since(started)
						f := results[name]
						if f == nil {
							f = &figures{}
							results[name] = f
							names = append(names, name)
						}
						f.rate = append(f.rate, rows/took.Seconds())
						f.cpu = append(f.cpu, float64(backendCPU(b, dsn)-before)*10/(rows/1000))
						f.size = append(f.size, sizeMB(b, dsn))
						if !direct {
							started := time.Now()
							exec(b, dsn, "SELECT compress_chunk(c) FROM show_chunks('crypto_prices_log') c")
							f.compressMs = append(f.compressMs, float64(time.Since(started).Milliseconds()))
							f.compressedSize = append(f.compressedSize, sizeMB(b, dsn))
						}
						b.ReportMetric(f.rate[len(f.rate)-1], "rows/s")
					}
				})
			}
		}
	}
	median := func(v []float64) string {
		if len(v) == 0 {
			return "-"
		}
		s := slices.Clone(v)
		slices.Sort(s)
		return fmt.Sprintf("%.1f", s[len(s)/2])
	}
	fmt.Printf("\n%-36s %10s %22s %12s %22s %20s\n", "exactly-once COPY into crypto_prices_log", "rows/s", "backend CPU ms/1k rows", "size MB", "compress_chunk after, ms", "size after, MB")
	for _, n := range names {
		f := results[n]
		fmt.Printf("%-36s %10s %22s %12s %22s %20s\n", n, median(f.rate), median(f.cpu), median(f.size), median(f.compressMs), median(f.compressedSize))
	}
}

func sizeMB(b *testing.B, dsn string) float64 {
	var mb float64
	if _, err := fmt.Sscan(queryStrings(b, dsn, "SELECT (hypertable_size('crypto_prices_log') / 1048576.0)::text")[0], &mb); err != nil {
		b.Fatal(err)
	}
	return mb
}
