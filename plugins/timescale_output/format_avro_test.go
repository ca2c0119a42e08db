package timescale_output

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// testRegistry is franz-go's in-process schema registry served on a port
// of ours, so that it can go away and come back at the same address.
type testRegistry struct {
	*srfake.Registry
	addr string
	mu   sync.Mutex
	srv  *http.Server
}

func startRegistry(t *testing.T) *testRegistry {
	t.Helper()
	r := &testRegistry{Registry: srfake.NewRegistry()}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.stop)
	return r
}

func (r *testRegistry) url() string { return "http://" + r.addr }

func (r *testRegistry) serve(ln net.Listener) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.srv = &http.Server{Handler: r.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
}

// stop closes the listener and every connection: the registry is gone.
func (r *testRegistry) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.srv != nil {
		_ = r.srv.Close()
		r.srv = nil
	}
}

// writeWaitsForTheRegistry writes msg, whose schema is not cached, while
// reg is down: the write must still be waiting a second later, and must
// succeed once reg is back.
func writeWaitsForTheRegistry(t *testing.T, o *output, reg *testRegistry, msg *service.Message) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- o.WriteBatch(context.Background(), service.MessageBatch{msg}) }()
	select {
	case err := <-done:
		t.Fatalf("the batch finished while the registry was down: %v", err)
	case <-time.After(time.Second):
	}
	reg.restart(t)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("the batch was not written after the registry came back")
	}
}

// restart serves the same registry (same schemas) at the same address.
func (r *testRegistry) restart(t *testing.T) {
	ln, err := net.Listen("tcp", r.addr)
	require.NoError(t, err)
	r.serve(ln)
}

// register registers an Avro schema under subject and returns its id.
func (r *testRegistry) register(t *testing.T, subject, schema string) int {
	t.Helper()
	id, _, err := r.RegisterSchema(subject, sr.Schema{Schema: schema, Type: sr.TypeAvro})
	require.NoError(t, err)
	return id
}

func shippedSchema(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../pipelines/schemas/" + name)
	require.NoError(t, err)
	return string(b)
}

// avroFrame encodes record with schema and frames it with id.
func avroFrame(t *testing.T, id int, schema string, record map[string]any) []byte {
	t.Helper()
	s, err := avro.Parse(schema)
	require.NoError(t, err)
	payload, err := s.Encode(record)
	require.NoError(t, err)
	return append(registry.AppendFrame(nil, id), payload...)
}

// avroPrice is a valid price record; fields override its values.
func avroPrice(coin string, i int, usd string, fields map[string]any) map[string]any {
	rec := map[string]any{"coinId": coin, "symbol": "SYM", "exchangeId": "binance", "usdPrice": usd,
		"lastUpdated": time.UnixMilli(baseMillis + int64(i)*1000), "source": "test", "attribution": "qiflow",
		"marketCap": nil, "volume24h": nil, "change24h": nil, "change7d": nil}
	for k, v := range fields {
		rec[k] = v
	}
	return rec
}

func framedMessage(b []byte, i int) *service.Message {
	m := service.NewMessage(b)
	m.MetaSetMut("kafka_topic", "crypto-prices-avro")
	m.MetaSetMut("kafka_partition", "0")
	m.MetaSetMut("kafka_offset", fmt.Sprint(i))
	return m
}

func avroOutput(t *testing.T, dsn, url string) *output {
	return newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nencoding: avro\nretry_initial_interval: 20ms\nretry_max_interval: 200ms\nschema_registry:\n  url: %q\n", dsn, url))
}

// TestAvroTwinsOfTheJSONProbes writes the JSON tests' probes as Avro: the
// smallest and the largest price, null optionals, a scale wider than the
// column's (refused, not rounded), and the wire format's validation rules,
// which give the same codes and reasons as in JSON.
func TestAvroTwinsOfTheJSONProbes(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	priceSchema := shippedSchema(t, "price.avsc")
	id := reg.register(t, "crypto-prices-avro-value", priceSchema)
	// A writer whose usdPrice has 10 decimal places and 20 integer digits: a
	// value that uses them does not fit NUMERIC(20,8), and is refused
	// rather than rounded.
	wide := strings.Replace(priceSchema, `"precision": 20,
        "scale": 8`, `"precision": 30,
        "scale": 10`, 1)
	require.NotEqual(t, priceSchema, wide)
	wideID := reg.register(t, "wide-value", wide)
	o := avroOutput(t, dsn, reg.url())

	batch := service.MessageBatch{
		framedMessage(avroFrame(t, id, priceSchema, avroPrice("tiny", 0, "0.00000001", nil)), 0),
		framedMessage(avroFrame(t, id, priceSchema, avroPrice("huge", 1, "99999999999.99999999",
			map[string]any{"marketCap": "1320000000000.50", "change24h": "-1.2345"})), 1),
		framedMessage(avroFrame(t, wideID, wide, avroPrice("scale", 2, "0.1234567891", nil)), 2),
		framedMessage(avroFrame(t, wideID, wide, avroPrice("scalefits", 3, "0.1200000000", nil)), 3),
		framedMessage(avroFrame(t, id, priceSchema, avroPrice("negative", 4, "-3", nil)), 4),
		framedMessage(avroFrame(t, id, priceSchema, avroPrice("blank", 5, "1", map[string]any{"exchangeId": "  "})), 5),
		framedMessage(avroFrame(t, wideID, wide, avroPrice("toobig", 6, "1000000000000", nil)), 6),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 4, "%v", failed)
	assert.Equal(t, "invalid_value", result.Classify(failed[2]).Code)
	assert.Contains(t, failed[2].Error(), "more than 8 decimal places")
	assert.Equal(t, "validation_failed", result.Classify(failed[4]).Code)
	assert.Contains(t, failed[4].Error(), "usdPrice must be > 0, got -3.00000000", "the JSON twin's reason, at the writer's scale")
	assert.Equal(t, "invalid_field", result.Classify(failed[5]).Code)
	assert.Contains(t, failed[5].Error(), "exchangeId")
	assert.Equal(t, "invalid_value", result.Classify(failed[6]).Code)
	for _, err := range failed {
		assert.Equal(t, result.Business, result.Classify(err).Category)
	}

	assert.Equal(t, []string{
		"huge|99999999999.99999999|1320000000000.50|-|-1.2345|-",
		"scalefits|0.12000000|-|-|-|-",
		"tiny|0.00000001|-|-|-|-",
	}, queryStrings(t, dsn, `SELECT concat_ws('|', coin_id, usd_price, coalesce(market_cap::text, '-'), coalesce(volume_24h::text, '-'),
		coalesce(change_24h::text, '-'), coalesce(change_7d::text, '-')) FROM crypto_prices ORDER BY coin_id`))
	assert.Equal(t, []string{fmt.Sprint(baseMillis)}, queryStrings(t, dsn,
		`SELECT (extract(epoch FROM last_updated) * 1000)::bigint::text FROM crypto_prices WHERE coin_id = 'tiny'`), "timestamp-millis to the millisecond")
}

// TestAvroTwoSchemaVersionsInOneStream reads a stream in which the producer
// moved to a newer, compatible schema: an added field with a default, and
// a timestamp in microseconds.
func TestAvroTwoSchemaVersionsInOneStream(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	v1 := shippedSchema(t, "price.avsc")
	v2 := strings.Replace(v1, `"timestamp-millis"`, `"timestamp-micros"`, 1)
	v2 = strings.Replace(v2, `"fields": [`, `"fields": [
    {"name": "bidPrice", "type": ["null", {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 8}], "default": null},`, 1)
	id1 := reg.register(t, "crypto-prices-avro-value", v1)
	id2 := reg.register(t, "crypto-prices-avro-value", v2)
	require.NotEqual(t, id1, id2)
	o := avroOutput(t, dsn, reg.url())

	micro := time.UnixMicro(baseMillis*1000 + 1_000_123)
	batch := service.MessageBatch{
		framedMessage(avroFrame(t, id1, v1, avroPrice("old", 0, "1.5", nil)), 0),
		framedMessage(avroFrame(t, id2, v2, avroPrice("new", 1, "2.5", map[string]any{"bidPrice": "2.4", "lastUpdated": micro})), 1),
	}
	require.Empty(t, write(t, o, batch))
	assert.Equal(t, []string{"new|2.50000000|" + fmt.Sprint(baseMillis*1000+1_000_123), "old|1.50000000|" + fmt.Sprint(baseMillis*1000)},
		queryStrings(t, dsn, `SELECT concat_ws('|', coin_id, usd_price, (extract(epoch FROM last_updated) * 1000000)::bigint) FROM crypto_prices ORDER BY coin_id`))
}

// TestAvroFramingFaultsAreDeadLetteredWithAReason: an id the registry does
// not have, a truncated payload, a wrong magic byte and trailing bytes each
// fail their message alone, as BUSINESS errors with a code and reason.
func TestAvroFramingFaultsAreDeadLetteredWithAReason(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	schema := shippedSchema(t, "price.avsc")
	id := reg.register(t, "crypto-prices-avro-value", schema)
	o := avroOutput(t, dsn, reg.url())

	good := avroFrame(t, id, schema, avroPrice("good", 0, "1", nil))
	unknown := avroFrame(t, 4242, schema, avroPrice("unknown", 1, "1", nil))
	truncated := avroFrame(t, id, schema, avroPrice("truncated", 2, "1", nil))
	truncated = truncated[:len(truncated)-6]
	magic := append([]byte{1}, good[1:]...)
	trailing := append(avroFrame(t, id, schema, avroPrice("trailing", 3, "1", nil)), 0, 0)
	batch := service.MessageBatch{
		framedMessage(good, 0), framedMessage(unknown, 1), framedMessage(truncated, 2),
		framedMessage(magic, 3), framedMessage(trailing, 4), framedMessage(good[:3], 5),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 5)
	want := map[int][2]string{
		1: {registry.CodeUnknownSchema, "schema id 4242 is not in the registry"},
		2: {registry.CodeInvalidPayload, "does not decode"},
		3: {registry.CodeInvalidFrame, "magic byte is 0x01"},
		4: {registry.CodeInvalidPayload, "2 bytes after its record"},
		5: {registry.CodeInvalidFrame, "5-byte Confluent header"},
	}
	for i, w := range want {
		c := result.Classify(failed[i])
		assert.Equal(t, result.Business, c.Category, "message %d", i)
		assert.Equal(t, w[0], c.Code, "message %d: %v", i, failed[i])
		assert.Contains(t, failed[i].Error(), w[1], "message %d", i)
	}
	assert.Equal(t, 1, count(t, dsn, "crypto_prices"))
}

// TestAvroRegistryThatGoesAwayAndComesBack: while the registry is down, a
// message whose schema is not cached yet waits (TRANSIENT, retried) and is
// not dead-lettered; once it is back the message is written. Schemas
// cached before it went away keep working without it.
func TestAvroRegistryThatGoesAwayAndComesBack(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	v1 := shippedSchema(t, "price.avsc")
	id1 := reg.register(t, "crypto-prices-avro-value", v1)
	v2 := strings.Replace(v1, `"fields": [`, `"fields": [
    {"name": "note", "type": "string", "default": ""},`, 1)
	id2 := reg.register(t, "crypto-prices-avro-value", v2)
	o := avroOutput(t, dsn, reg.url())
	require.Empty(t, write(t, o, service.MessageBatch{framedMessage(avroFrame(t, id1, v1, avroPrice("cached", 0, "1", nil)), 0)}))

	reg.stop()
	require.Empty(t, write(t, o, service.MessageBatch{framedMessage(avroFrame(t, id1, v1, avroPrice("cached", 1, "1", nil)), 1)}),
		"a cached schema needs no registry")

	writeWaitsForTheRegistry(t, o, reg, framedMessage(avroFrame(t, id2, v2, avroPrice("waited", 2, "1", map[string]any{"note": "v2"})), 2))
	assert.Equal(t, []string{"cached", "cached", "waited"}, queryStrings(t, dsn, "SELECT coin_id FROM crypto_prices ORDER BY coin_id, last_updated"))
}

// TestAvroRegistryDownAtShutdownFailsTheBatchWithoutDeadLetters: a stop
// while the registry is unreachable fails the batch as a whole, so its
// messages stay uncommitted and are replayed.
func TestAvroRegistryDownAtShutdownFailsTheBatchWithoutDeadLetters(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	schema := shippedSchema(t, "price.avsc")
	id := reg.register(t, "crypto-prices-avro-value", schema)
	o := avroOutput(t, dsn, reg.url())
	reg.stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := o.WriteBatch(ctx, service.MessageBatch{framedMessage(avroFrame(t, id, schema, avroPrice("x", 0, "1", nil)), 0)})
	require.Error(t, err)
	var batchErr *service.BatchError
	assert.False(t, errors.As(err, &batchErr), "no message failed alone: %v", err)
	assert.Equal(t, 0, count(t, dsn, "crypto_prices"))
}
