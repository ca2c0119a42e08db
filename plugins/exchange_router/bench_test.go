package exchangerouter

import (
	"context"
	"fmt"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// BenchmarkRouter measures the processor's own cost per message: reading
// the exchange and symbol of a 300-byte price message, the partition
// decision and the metadata, over 8 exchanges × 50 symbols, with one in
// ten exchange ids an alias that is rewritten.
func BenchmarkRouter(b *testing.B) {
	conf, err := processorSpec().ParseYAML("topic: crypto-prices\npartitions: 12", nil)
	if err != nil {
		b.Fatal(err)
	}
	p, err := newProcessorFromConfig(conf, service.MockResources())
	if err != nil {
		b.Fatal(err)
	}
	const batchSize = 10_000
	values := make([][]byte, batchSize)
	for i := range values {
		exchange := eightExchanges[i%8]
		if i%10 == 0 {
			exchange = "Binance.com"
		}
		values[i] = fmt.Appendf(nil, `{"coinId":"coin-%d","symbol":"SYM%d","exchangeId":%q,"usdPrice":"67234.12345678","marketCap":"1324567890123.45","volume24h":"28123456789.12","change24h":"-1.2345","change7d":"3.4567","lastUpdated":"2026-11-26T12:00:00.123Z","source":"market_data","attribution":"qiflow benchmark feed"}`,
			i%50, i%50, exchange)
	}
	// Each operation routes 20 batches, so that -benchtime 1x, as make
	// bench runs it, measures 200,000 messages rather than a cold start.
	const batchesPerOp = 20
	ctx := context.Background()
	batches := make([]service.MessageBatch, batchesPerOp)
	for b.Loop() {
		b.StopTimer()
		for j := range batches {
			batches[j] = make(service.MessageBatch, batchSize)
			for i, v := range values {
				batches[j][i] = service.NewMessage(v)
			}
		}
		b.StartTimer()
		for _, batch := range batches {
			if _, err := p.ProcessBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize*batchesPerOp), "ns/msg")
}

// BenchmarkDecision measures the pure core alone: the routing decision for
// one message, without Benthos.
func BenchmarkDecision(b *testing.B) {
	r := testRouter(b, "topic: crypto-prices\npartitions: 12")
	msg := []byte(`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"kraken","usdPrice":"67234.12345678","lastUpdated":"2026-11-26T12:00:00.123Z","source":"market_data","attribution":"qiflow"}`)
	const perOp = 100_000
	for b.Loop() {
		for range perOp {
			if _, err := r.route(msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perOp), "ns/msg")
}
