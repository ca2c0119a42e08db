package timescale_output

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/plugins/prometheus"
)

// counters reads the counters named prefix_name from the Prometheus registry
// that /metrics serves, summed over their labels.
func counters(t *testing.T, prefix string, names ...string) map[string]int {
	t.Helper()
	families, err := prometheus.Registry().Gather()
	require.NoError(t, err)
	out := map[string]int{}
	for _, f := range families {
		for _, name := range names {
			if f.GetName() == prefix+"_qiflow_"+name+"_total" {
				for _, m := range f.GetMetric() {
					out[name] += int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}

func TestCountersSayHowManyRowsWereInsertedAndHowManyConflictsSkipped(t *testing.T) {
	tests := []struct {
		conflict                     string
		inserted, updated, conflicts int
	}{
		// Skipped: the 20 re-sends within the first batch, the 480 re-sends
		// of the second and the whole third.
		{"do_nothing", 1500, 0, 20 + 480 + 1000},
		// The re-sends of the other batches overwrite the stored rows; within
		// the first batch the last of a key wins and the earlier are skipped.
		{"do_update", 1500, 480 + 1000, 20},
	}
	for _, tt := range tests {
		t.Run(tt.conflict, func(t *testing.T) {
			dsn := database(t)
			// The registry is the process's: a prefix of its own keeps this
			// run's counters apart (go test -count=N).
			prefix := fmt.Sprintf("counters_%s_%d", tt.conflict, time.Now().UnixNano())
			b := service.NewStreamBuilder()
			require.NoError(t, b.SetMetricsYAML(fmt.Sprintf("prometheus: { prefix: %s, add_process_metrics: false, add_go_metrics: false }", prefix)))
			require.NoError(t, b.SetLoggerYAML("level: warn"))
			require.NoError(t, b.AddOutputYAML(fmt.Sprintf(`
timescale:
  dsn: %q
  table: crypto_prices
  format: price
  conflict: %s
  dead_letter: { drop: {} }
`, dsn, tt.conflict)))
			send, err := b.AddBatchProducerFunc()
			require.NoError(t, err)
			stream, err := b.Build()
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			ran := make(chan error, 1)
			go func() { ran <- stream.Run(ctx) }()

			batch := func(keys ...[2]int) service.MessageBatch {
				var out service.MessageBatch
				for _, r := range keys {
					for k := r[0]; k < r[1]; k++ {
						out = append(out, price(fmt.Sprintf("coin%d", k%5), k, `"1.5"`))
					}
				}
				return out
			}
			first := batch([2]int{0, 980}, [2]int{0, 20})
			first = append(first, price("bad", 1, `"-1"`), price("bad", 2, `"0"`)) // dead-lettered
			second := batch([2]int{500, 980}, [2]int{980, 1500})
			sent := 0
			for _, b := range []service.MessageBatch{first, second, second} {
				require.NoError(t, send(ctx, b))
				sent += len(b)
			}
			got := counters(t, prefix, "timescale_rows_inserted", "timescale_rows_updated", "timescale_rows_written",
				"timescale_conflicts_skipped", "timescale_rows_dead_lettered")
			require.NoError(t, stream.StopWithin(10*time.Second))
			require.NoError(t, <-ran)

			rows := count(t, dsn, "crypto_prices")
			t.Logf("count(*) %d, counters %v", rows, got)
			assert.Equal(t, tt.inserted, rows)
			assert.Equal(t, rows, got["timescale_rows_inserted"], "rows inserted, as the database reports them")
			assert.Equal(t, tt.updated, got["timescale_rows_updated"])
			assert.Equal(t, tt.conflicts, got["timescale_conflicts_skipped"])
			assert.Equal(t, got["timescale_rows_inserted"]+got["timescale_rows_updated"], got["timescale_rows_written"])
			assert.Equal(t, 2, got["timescale_rows_dead_lettered"])
			assert.Equal(t, sent, got["timescale_rows_inserted"]+got["timescale_rows_updated"]+
				got["timescale_conflicts_skipped"]+got["timescale_rows_dead_lettered"], "every message is counted once")
		})
	}
}
