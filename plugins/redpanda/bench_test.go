package redpanda

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

const benchMessages = 200_000

// benchValue is a 300-byte price message, the size of the wire format.
var benchValue = []byte(`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"67234.12345678","marketCap":"1324567890123.45","volume24h":"28123456789.12","change24h":"-1.2345","change7d":"3.4567","lastUpdated":"2026-11-26T12:00:00.123Z","source":"market_data","attribution":"qiflow benchmark feed"}`)

func benchBroker(b *testing.B, topic string) *testenv.Broker {
	broker := testenv.NewBroker(b, testenv.WithTopics(12, topic))
	broker.ProduceN(b, topic, benchMessages, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte("k" + strconv.Itoa(i%400)), Value: benchValue}
	})
	return broker
}

// runUntil runs a stream built from yaml input and consumer until count
// reaches want, and returns the messages per second.
func runUntil(b *testing.B, inputYAML, outputYAML string, consume service.MessageBatchHandlerFunc, done func() bool) float64 {
	sb := service.NewStreamBuilder()
	if err := sb.SetLoggerYAML("level: warn"); err != nil {
		b.Fatal(err)
	}
	if err := sb.AddInputYAML(inputYAML); err != nil {
		b.Fatal(err)
	}
	var err error
	if consume != nil {
		err = sb.AddBatchConsumerFunc(consume)
	} else {
		err = sb.AddOutputYAML(outputYAML)
	}
	if err != nil {
		b.Fatal(err)
	}
	stream, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	go func() { _ = stream.Run(context.Background()) }()
	for !done() {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	_ = stream.StopWithin(10 * time.Second)
	return float64(benchMessages) / elapsed.Seconds()
}

// BenchmarkInput measures the redpanda input alone: a topic of 200,000
// messages over 12 partitions consumed and acked by a no-op consumer.
func BenchmarkInput(b *testing.B) {
	broker := benchBroker(b, "bench-in")
	var rate float64
	for i := 0; b.Loop(); i++ {
		var count atomic.Int64
		rate = runUntil(b, inputYAML(broker.SeedList(), "bench-in", fmt.Sprintf("bench-%d", i)), "",
			func(_ context.Context, batch service.MessageBatch) error {
				count.Add(int64(len(batch)))
				return nil
			},
			func() bool { return count.Load() >= benchMessages })
	}
	b.ReportMetric(rate, "msgs/s")
}

// BenchmarkPassThrough measures redpanda input → redpanda output between two
// topics of the same in-process broker, until every message is written.
func BenchmarkPassThrough(b *testing.B) {
	broker := benchBroker(b, "bench-src")
	var rate float64
	for i := 0; b.Loop(); i++ {
		dst := fmt.Sprintf("bench-dst-%d", i)
		broker.CreateTopic(b, dst, 12)
		rate = runUntil(b, inputYAML(broker.SeedList(), "bench-src", fmt.Sprintf("pass-%d", i)), fmt.Sprintf(`
redpanda:
  seed_brokers: [ %q ]
  topic: %s
  key: ${! @kafka_key }
  max_in_flight: 8
`, broker.SeedList(), dst), nil, func() bool {
			var n int64
			for _, o := range broker.EndOffsets(b, dst) {
				n += o
			}
			return n >= benchMessages
		})
	}
	b.ReportMetric(rate, "msgs/s")
}

// BenchmarkWindow measures the checkpointer's own cost per message: buffer,
// dispatch in batches, ack and commit.
func BenchmarkWindow(b *testing.B) {
	recs := records(0, 1024)
	now := time.Now()
	w := newPartitionWindow(2048)
	for b.Loop() {
		for _, r := range recs {
			r.Offset += 1024
		}
		w.add(recs, now)
		for batch := w.next(256, now); batch != nil; batch = w.next(256, now) {
			w.ack(batch)
		}
		eo, n, _ := w.pendingCommit()
		w.commitDone(eo.Offset, n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(recs)), "ns/msg")
}
