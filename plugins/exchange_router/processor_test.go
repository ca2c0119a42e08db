package exchangerouter

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/qicore/qiflow/plugins/redpanda"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestLintRulesCatchAMismatchedTopicAndStrategy(t *testing.T) {
	for _, yaml := range []string{
		"exchange_router:\n  topic: crypto-prices.{exchange}\n  partitions: 12",
		"exchange_router:\n  strategy: topic\n  topic: crypto-prices\n  partitions: 12",
		"exchange_router:\n  topic: crypto-prices\n  partitions: 0",
	} {
		err := service.NewStreamBuilder().AddProcessorYAML(yaml)
		assert.Error(t, err, yaml)
	}
}

func TestProcessorSetsMetadataAndDeadLetterHeaders(t *testing.T) {
	conf, err := processorSpec().ParseYAML("topic: crypto-prices\npartitions: 12", nil)
	require.NoError(t, err)
	p, err := newProcessorFromConfig(conf, service.MockResources())
	require.NoError(t, err)

	batch := service.MessageBatch{
		service.NewMessage([]byte(`{"exchangeId":"GDAX","symbol":"BTC"}`)),
		service.NewMessage([]byte(`{"exchangeId":"nowhere","symbol":"BTC"}`)),
		service.NewMessage([]byte(`{"symbol":"BTC"}`)),
	}
	out, err := p.ProcessBatch(context.Background(), batch)
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Len(t, out[0], 3)

	good := out[0][0]
	require.NoError(t, good.GetError())
	meta := func(m *service.Message, k string) string { v, _ := m.MetaGet(k); return v }
	assert.Equal(t, "crypto-prices", meta(good, MetaTopic))
	assert.Equal(t, "coinbase:BTC", meta(good, MetaKey))
	assert.Equal(t, "coinbase", meta(good, MetaExchange))
	assert.Contains(t, p.router.table["coinbase"].ranked, int32(mustAtoi(t, meta(good, MetaPartition))))
	body, _ := good.AsBytes()
	assert.JSONEq(t, `{"exchangeId":"coinbase","symbol":"BTC"}`, string(body))

	for i, code := range map[int]string{1: CodeUnknownExchange, 2: CodeMissingExchange} {
		m := out[0][i]
		require.Error(t, m.GetError())
		assert.Equal(t, "BUSINESS", meta(m, result.HeaderErrorCategory))
		assert.Equal(t, code, meta(m, result.HeaderErrorCode))
		assert.Equal(t, m.GetError().Error(), meta(m, result.HeaderError))
		assert.Equal(t, "crypto-prices.dlq", meta(m, MetaDeadLetterTopic))
		_, routed := m.MetaGet(MetaTopic)
		assert.False(t, routed, "a rejected message gets no topic")
	}
}

func TestExchangeMappingSuppliesTheExchange(t *testing.T) {
	conf, err := processorSpec().ParseYAML(`
topic: crypto-analytics
partitions: 6
exchanges: [ global, binance ]
exchange_mapping: 'root = this.exchangeId.or("global")'
`, nil)
	require.NoError(t, err)
	p, err := newProcessorFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	out, err := p.ProcessBatch(context.Background(), service.MessageBatch{
		service.NewMessage([]byte(`{"totalMarketCap":"1"}`)),
		service.NewMessage([]byte(`{"exchangeId":"Binance.com","totalMarketCap":"1"}`)),
	})
	require.NoError(t, err)
	key0, _ := out[0][0].MetaGet(MetaKey)
	key1, _ := out[0][1].MetaGet(MetaKey)
	assert.Equal(t, "global", key0)
	assert.Equal(t, "binance", key1)

	conf, err = processorSpec().ParseYAML("topic: t\npartitions: 6\nexchange_mapping: 'root = this.venue'", nil)
	require.NoError(t, err)
	p, err = newProcessorFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	out, err = p.ProcessBatch(context.Background(), service.MessageBatch{service.NewMessage([]byte(`{"venue":`))})
	require.NoError(t, err)
	assert.Error(t, out[0][0].GetError(), "a message the mapping cannot read fails")
	code, _ := out[0][0].MetaGet(result.HeaderErrorCode)
	assert.Equal(t, CodeMissingExchange, code)
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	_, err := fmt.Sscan(s, &n)
	require.NoError(t, err, s)
	return n
}

// runRouted pushes messages through exchange_router and the redpanda output
// into broker, in batches, and waits until the stream has written them.
func runRouted(t testing.TB, broker *testenv.Broker, routerYAML string, messages [][]byte, batchSize int) time.Duration {
	t.Helper()
	sb := service.NewStreamBuilder()
	require.NoError(t, sb.SetLoggerYAML("level: warn"))
	push, err := sb.AddBatchProducerFunc()
	require.NoError(t, err)
	require.NoError(t, sb.AddProcessorYAML(routerYAML))
	require.NoError(t, sb.AddOutputYAML(fmt.Sprintf(`
redpanda:
  seed_brokers: [ %q ]
  topic: ${! @qiflow_topic }
  key: ${! @qiflow_key }
  partition: ${! @qiflow_partition }
  max_in_flight: 1
`, broker.SeedList())))
	stream, err := sb.Build()
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- stream.Run(context.Background()) }()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	for i := 0; i < len(messages); i += batchSize {
		batch := make(service.MessageBatch, 0, batchSize)
		for _, m := range messages[i:min(i+batchSize, len(messages))] {
			batch = append(batch, service.NewMessage(m))
		}
		require.NoError(t, push(ctx, batch))
	}
	elapsed := time.Since(start)
	require.NoError(t, stream.StopWithin(30*time.Second))
	<-done
	return elapsed
}

func TestEveryExchangeSymbolArrivesInOrderInOnePartitionAndLoadIsBalanced(t *testing.T) {
	const total = 200_000
	broker := testenv.NewBroker(t, testenv.WithTopics(12, "crypto-prices"))
	syms := symbols(50)
	messages := make([][]byte, total)
	for i := range messages {
		ex, sym := eightExchanges[i%8], syms[(i/8)%50]
		messages[i] = fmt.Appendf(nil, `{"exchangeId":%q,"symbol":%q,"seq":%d}`, ex, sym, i)
	}
	runRouted(t, broker, "exchange_router:\n  topic: crypto-prices\n  partitions: 12\n", messages, 2000)

	records := broker.ConsumeAll(t, "crypto-prices")
	require.Len(t, records, total)
	type stream struct {
		partition int32
		lastSeq   int
	}
	streams := map[string]*stream{}
	perPartition := make([]int, 12)
	for _, rec := range records {
		var m struct {
			Exchange string `json:"exchangeId"`
			Symbol   string `json:"symbol"`
			Seq      int    `json:"seq"`
		}
		require.NoError(t, json.Unmarshal(rec.Value, &m))
		key := m.Exchange + ":" + m.Symbol
		require.Equal(t, key, string(rec.Key))
		perPartition[rec.Partition]++
		s, ok := streams[key]
		if !ok {
			streams[key] = &stream{partition: rec.Partition, lastSeq: m.Seq}
			continue
		}
		require.Equal(t, s.partition, rec.Partition, "%s stays in one partition", key)
		require.Greater(t, m.Seq, s.lastSeq, "%s arrives in order", key)
		s.lastSeq = m.Seq
	}
	assert.Len(t, streams, 400)
	mean := float64(total) / 12
	most := 0
	for _, n := range perPartition {
		most = max(most, n)
	}
	t.Logf("messages per partition %v; max/mean %.2f", perPartition, float64(most)/mean)
	assert.LessOrEqual(t, float64(most), 2*mean, "no partition takes more than twice the mean")
}

func TestHotExchangeMayExceedTheMeanOnlyOnItsPartitions(t *testing.T) {
	r := testRouter(t, "topic: crypto-prices\npartitions: 12\nhot_exchanges: { binance: 2 }")
	perPartition := make([]int, 12)
	for _, ex := range eightExchanges {
		n := 1
		if ex == "binance" {
			n = 10 // ten times the traffic of the others
		}
		for _, sym := range symbols(50) {
			d, err := r.route([]byte(`{"exchangeId":"` + ex + `","symbol":"` + sym + `"}`))
			require.NoError(t, err)
			perPartition[d.partition] += n
		}
	}
	mean := float64(50*(7+10)) / 12
	for p, n := range perPartition {
		if float64(n) > 2*mean {
			assert.Contains(t, r.table["binance"].ranked, int32(p), "partition %d is over twice the mean but not binance's", p)
		}
	}
}

func TestPartitionCountMismatchFailsInTheOutput(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(3, "small"))
	var msgs [][]byte
	for _, sym := range symbols(100) {
		msgs = append(msgs, []byte(`{"exchangeId":"binance","symbol":"`+sym+`"}`))
	}
	// The output logs and nacks the messages it cannot write; the producer
	// func hands the error back.
	sb := service.NewStreamBuilder()
	require.NoError(t, sb.SetLoggerYAML("level: none"))
	push, err := sb.AddBatchProducerFunc()
	require.NoError(t, err)
	require.NoError(t, sb.AddProcessorYAML("exchange_router:\n  topic: small\n  partitions: 12\n"))
	require.NoError(t, sb.AddOutputYAML(fmt.Sprintf("redpanda:\n  seed_brokers: [ %q ]\n  topic: ${! @qiflow_topic }\n  partition: ${! @qiflow_partition }\n", broker.SeedList())))
	stream, err := sb.Build()
	require.NoError(t, err)
	go func() { _ = stream.Run(context.Background()) }()
	defer func() { _ = stream.StopWithin(10 * time.Second) }()
	batch := service.MessageBatch{}
	for _, m := range msgs {
		batch = append(batch, service.NewMessage(m))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = push(ctx, batch)
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "does not exist"), "%v", err)
}
