package timescale_output

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// oldPrice is a price message of series coin%series, tick i seconds into
// the day five days ago: a day whose chunk is compressed by the test.
func oldPrice(i, series int, usd string) *service.Message {
	day := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -5)
	ts := day.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
	return service.NewMessage(fmt.Appendf(nil, `{"coinId":"coin%d","symbol":"SYM","exchangeId":"binance","usdPrice":%q,"lastUpdated":%q,"source":"test","attribution":"qiflow"}`,
		i%series, usd, ts))
}

func TestUpsertsIntoCompressedChunksComplete(t *testing.T) {
	dsn := database(t)
	testenv.RequireTimescale(t, dsn)
	const series, rows, batchSize = 20, 12_000, 2048
	// A limit low enough that one batch of upserts exceeds it (each batch
	// touches every series, whose compressed batch holds 600 rows), as
	// 280,000 replayed messages exceed the default of 100,000.
	exec(t, dsn, fmt.Sprintf("ALTER DATABASE %s SET timescaledb.max_tuples_decompressed_per_dml_transaction = 1000", dbName(dsn)))

	batches := func(from, to int, usd string) []service.MessageBatch {
		var out []service.MessageBatch
		for start := from; start < to; start += batchSize {
			var b service.MessageBatch
			for i := start; i < min(start+batchSize, to); i++ {
				b = append(b, oldPrice(i, series, usd))
			}
			out = append(out, b)
		}
		return out
	}
	// write writes the batches and returns the rate in rows per second.
	write := func(t *testing.T, o *output, bs []service.MessageBatch) float64 {
		t.Helper()
		started, n := time.Now(), 0
		for _, b := range bs {
			assert.Empty(t, writeWithin(t, time.Minute, o, b))
			n += len(b)
		}
		return float64(n) / time.Since(started).Seconds()
	}
	seed := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\n", dsn))
	write(t, seed, batches(0, rows, "1"))
	require.NotEmpty(t, queryStrings(t, dsn, `
SELECT compress_chunk(c)::text FROM show_chunks('crypto_prices', older_than => now() - interval '3 days') c`))
	require.Equal(t, []string{"1"}, queryStrings(t, dsn, `
SELECT count(*)::text FROM timescaledb_information.chunks WHERE hypertable_name = 'crypto_prices' AND is_compressed`),
		"the old day's chunk is compressed")

	rates := map[string]float64{}
	stored := rows
	for _, tt := range []struct{ conflict, want, lateFraction string }{
		{"do_nothing", "1.00000000", ".25"},
		{"do_update", "2.00000000", ".75"},
	} {
		t.Run(tt.conflict, func(t *testing.T) {
			o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nconflict: %s\n", dsn, tt.conflict))
			rates[tt.conflict+" replay"] = write(t, o, batches(0, rows, "2"))
			assert.Equal(t, []string{tt.want}, queryStrings(t, dsn,
				"SELECT DISTINCT usd_price::text FROM crypto_prices WHERE last_updated = date_trunc('second', last_updated)"))
			assert.Equal(t, stored, count(t, dsn, "crypto_prices"), "a replay adds no rows")

			// Late rows: new keys between the stored ticks of the compressed day.
			late := batches(0, rows/2, "3")
			for _, b := range late {
				for _, m := range b {
					raw, err := m.AsBytes()
					require.NoError(t, err)
					m.SetBytes([]byte(strings.Replace(string(raw), `Z"`, tt.lateFraction+`Z"`, 1)))
				}
			}
			rates[tt.conflict+" late"] = write(t, o, late)
			stored += rows / 2
			assert.Equal(t, stored, count(t, dsn, "crypto_prices"), "every late row is stored")
		})
	}
	t.Logf("rows/s into a compressed chunk: %v", rates)
}
