package pipelines_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/testenv"
)

// registryAt is franz-go's in-process schema registry, to be served at a
// fixed loopback address once serve is called.
type registryAt struct {
	*srfake.Registry
	addr string
}

// newRegistryAt reserves a loopback port for a registry and does not
// serve it yet: until serve, connections to it are refused.
func newRegistryAt(t *testing.T) *registryAt {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return &registryAt{Registry: srfake.NewRegistry(), addr: addr}
}

func (r *registryAt) url() string { return "http://" + r.addr }

func (r *registryAt) serve(t *testing.T) {
	ln, err := net.Listen("tcp", r.addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// avroPriceMessage is priceMessage(i) as Confluent-framed Avro of schema.
func avroPriceMessage(t *testing.T, schema *avro.Schema, id, i int) []byte {
	payload, err := schema.Encode(map[string]any{
		"coinId": fmt.Sprintf("coin-%d", i%50), "symbol": fmt.Sprintf("C%d", i%50), "exchangeId": "binance",
		"usdPrice": fmt.Sprintf("%d.12345678", 1+i%1000), "lastUpdated": time.UnixMilli(baseMillis + int64(i/50)*1000),
		"source": "test", "attribution": "qiflow", "marketCap": nil, "volume24h": nil, "change24h": nil, "change7d": nil,
	})
	require.NoError(t, err)
	return append(registry.AppendFrame(nil, id), payload...)
}

// TestPricesAvroExampleKeepsThePricesPromises runs the shipped
// examples/prices_avro.yaml as a user would (qiflow run, SCHEMA_REGISTRY_URL)
// and holds it to prices.yaml's promises: a registry that is down when the
// pipeline starts holds the messages and dead-letters none; producer
// retries add no rows; after a SIGKILL the rows equal the unique messages;
// and messages that can never be written (an unknown schema id, a
// truncated payload, a wrong magic byte, a negative price) go to
// crypto-prices-avro.dlq with headers saying why.
func TestPricesAvroExampleKeepsThePricesPromises(t *testing.T) {
	const n = 20_000
	broker := newBroker(t)
	broker.CreateTopic(t, "crypto-prices-avro", 12)
	broker.CreateTopic(t, "crypto-prices-avro.dlq", 1)
	dsn := withTables(t, testenv.Database(t))
	reg := newRegistryAt(t)
	text, err := os.ReadFile("schemas/price.avsc")
	require.NoError(t, err)
	id, _, err := reg.RegisterSchema("crypto-prices-avro-value", sr.Schema{Schema: string(text), Type: sr.TypeAvro})
	require.NoError(t, err)
	schema, err := avro.Parse(string(text))
	require.NoError(t, err)

	// Every 20th message repeats an earlier one, as a producer retry would.
	broker.ProduceN(t, "crypto-prices-avro", n, func(i int) *kgo.Record {
		if i%20 == 19 {
			return &kgo.Record{Value: avroPriceMessage(t, schema, id, i-7)}
		}
		return &kgo.Record{Value: avroPriceMessage(t, schema, id, i)}
	})
	unique := n - n/20
	good := avroPriceMessage(t, schema, id, 0)
	negative, err := schema.Encode(map[string]any{"coinId": "neg", "symbol": "N", "exchangeId": "binance", "usdPrice": "-42",
		"lastUpdated": time.UnixMilli(baseMillis), "source": "s", "attribution": "a",
		"marketCap": nil, "volume24h": nil, "change24h": nil, "change7d": nil})
	require.NoError(t, err)
	bad := map[string][]byte{
		registry.CodeUnknownSchema:  append(registry.AppendFrame(nil, 4242), good[5:]...),
		registry.CodeInvalidPayload: good[:len(good)-4],
		registry.CodeInvalidFrame:   append([]byte{7}, good[1:]...),
		"validation_failed":         append(registry.AppendFrame(nil, id), negative...),
	}
	for code, m := range bad {
		broker.Produce(t, "crypto-prices-avro", &kgo.Record{Key: []byte(code), Value: m})
	}

	environment := append(env(broker, dsn), "SCHEMA_REGISTRY_URL="+reg.url())
	first := qiflow(t, environment, "run", "examples/prices_avro.yaml")
	time.Sleep(5 * time.Second)
	assert.Zero(t, rowCount(t, dsn, "crypto_prices"), "no schema, no rows:\n%s", first.Output())
	assert.Zero(t, len(broker.ConsumeAll(t, "crypto-prices-avro.dlq")), "a registry that is down dead-letters nothing")
	reg.serve(t)
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > unique/4 }, 90*time.Second, 10*time.Millisecond,
		"no rows arrived after the registry came up:\n%s", first.Output())
	require.NoError(t, first.Kill())
	_, err = first.Wait(10 * time.Second)
	require.NoError(t, err)
	atKill := rowCount(t, dsn, "crypto_prices")

	second := qiflow(t, environment, "run", "examples/prices_avro.yaml")
	waitCommitted(t, broker, "qiflow-prices-avro", "crypto-prices-avro", 120*time.Second, second)
	stop(t, second)
	t.Logf("killed with %d of %d rows written", atKill, unique)
	assert.Equal(t, unique, rowCount(t, dsn, "crypto_prices"), "every unique message is one row")

	letters := broker.ConsumeAll(t, "crypto-prices-avro.dlq")
	t.Logf("%d dead letters", len(letters))
	codes := map[string]string{}
	for _, l := range letters {
		h := map[string]string{}
		for _, kv := range l.Headers {
			h[kv.Key] = string(kv.Value)
		}
		assert.Equal(t, "BUSINESS", h["qiflow-error-category"], "%v", h)
		assert.NotEmpty(t, h["qiflow-error"])
		assert.Equal(t, "crypto-prices-avro", h["qiflow-source-topic"])
		assert.NotEmpty(t, h["qiflow-source-offset"])
		assert.Equal(t, bad[string(l.Key)], l.Value, "the dead letter is the message as it came")
		codes[string(l.Key)] = h["qiflow-error-code"]
	}
	assert.Equal(t, map[string]string{
		registry.CodeUnknownSchema: registry.CodeUnknownSchema, registry.CodeInvalidPayload: registry.CodeInvalidPayload,
		registry.CodeInvalidFrame: registry.CodeInvalidFrame, "validation_failed": "validation_failed",
	}, codes, "each bad message is dead-lettered with its own code (at least once: a SIGKILL may repeat one)")
}
