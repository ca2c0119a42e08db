package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/qicore/qiflow/plugins/external"

	"github.com/qicore/qiflow/internal/testenv"
)

// pluginBatch is the batch size of the plugin benchmark, as the issue asks.
const pluginBatch = 1000

// BenchmarkExternalPlugin measures what an out-of-process plugin costs: the
// same in-process pipeline (price messages with Kafka-like metadata, in
// batches of 1,000, to a consumer that counts them) with no processor, and
// with the external processor and the no-op example plugin. It needs no
// database or broker. QIFLOW_BENCH_ROWS sets the messages per run.
func BenchmarkExternalPlugin(b *testing.B) {
	msgs := min(benchRows, 1_000_000)
	b.Run("a_no_plugin", func(b *testing.B) {
		for range b.N {
			rate := runPluginPipeline(b, msgs, "")
			b.ReportMetric(rate, "msgs/s")
		}
	})
	b.Run("b_noop_plugin", func(b *testing.B) {
		processor := fmt.Sprintf("external:\n  plugin: %s\n", testenv.BuildBinary(b, "./examples/plugins/noop"))
		for range b.N {
			rate := runPluginPipeline(b, msgs, processor)
			b.ReportMetric(rate, "msgs/s")
		}
	})
}

// runPluginPipeline sends n messages through a pipeline with the given
// processor, if any, and returns the messages per second from the first batch
// produced to the last consumed. Payloads come from a pool made beforehand,
// so that making them does not compete with the pipeline for the CPU.
func runPluginPipeline(b *testing.B, n int, processor string) float64 {
	b.Helper()
	ts := tickTime(0)
	payloads := make([][]byte, 10*pluginBatch)
	for i := range payloads {
		payloads[i] = message(i, ts)
	}

	builder := service.NewStreamBuilder()
	builder.SetThreads(2)
	if err := builder.SetLoggerYAML("level: warn"); err != nil {
		b.Fatal(err)
	}
	if err := builder.SetMetricsYAML("none: {}"); err != nil {
		b.Fatal(err)
	}
	if processor != "" {
		if err := builder.AddProcessorYAML(processor); err != nil {
			b.Fatal(err)
		}
	}
	produce, err := builder.AddBatchProducerFunc()
	if err != nil {
		b.Fatal(err)
	}
	var consumed, errored atomic.Int64
	done := make(chan struct{})
	err = builder.AddBatchConsumerFunc(func(_ context.Context, batch service.MessageBatch) error {
		for _, m := range batch {
			if m.GetError() != nil {
				errored.Add(1)
			}
		}
		if consumed.Add(int64(len(batch))) == int64(n) {
			close(done)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	stream, err := builder.Build()
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = stream.Run(ctx) }()
	defer func() { _ = stream.Stop(context.Background()) }()

	start := time.Now()
	// A few batches in flight keep both pipeline threads busy.
	inFlight := make(chan struct{}, 8)
	go func() {
		for i := 0; i < n; i += pluginBatch {
			batch := make(service.MessageBatch, min(pluginBatch, n-i))
			for j := range batch {
				k := i + j
				m := service.NewMessage(payloads[k%len(payloads)])
				m.MetaSetMut("kafka_key", "exchange-"+strconv.Itoa(k%8))
				m.MetaSetMut("kafka_topic", "crypto-prices")
				m.MetaSetMut("kafka_partition", strconv.Itoa(k%12))
				m.MetaSetMut("kafka_offset", strconv.Itoa(k/12))
				m.MetaSetMut("kafka_timestamp_unix_ms", strconv.FormatInt(ts, 10))
				batch[j] = m
			}
			select {
			case inFlight <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				defer func() { <-inFlight }()
				if err := produce(ctx, batch); err != nil && ctx.Err() == nil {
					b.Error(err)
				}
			}()
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("consumed %d of %d messages in 5 minutes", consumed.Load(), n)
	}
	took := time.Since(start)
	if errored.Load() > 0 {
		b.Fatalf("%d messages came out with an error", errored.Load())
	}
	return float64(n) / took.Seconds()
}
