package timescale_output

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// registerProto registers a Protobuf schema under subject and returns its id.
func (r *testRegistry) registerProto(t *testing.T, subject, schema string, refs ...sr.SchemaReference) int {
	t.Helper()
	id, _, err := r.RegisterSchema(subject, sr.Schema{Schema: schema, Type: sr.TypeProtobuf, References: refs})
	require.NoError(t, err)
	return id
}

// protoFrame encodes fields as the message at index path of schema and
// frames it with id and the path. Decimals are strings, timestamps
// time.Time (a google.protobuf.Timestamp), messages map[string]any.
func protoFrame(t *testing.T, id int, schema string, fields map[string]any, path ...int) []byte {
	t.Helper()
	compiler := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
		Accessor: protocompile.SourceAccessorFromMap(map[string]string{"test.proto": schema}),
	})}
	files, err := compiler.Compile(context.Background(), "test.proto")
	require.NoError(t, err)
	md := files[0].Messages().Get(path[0])
	for _, i := range path[1:] {
		md = md.Messages().Get(i)
	}
	payload, err := proto.Marshal(dynamicMessage(t, md, fields))
	require.NoError(t, err)
	return append(registry.AppendIndexes(registry.AppendFrame(nil, id), path...), payload...)
}

func dynamicMessage(t *testing.T, md protoreflect.MessageDescriptor, fields map[string]any) *dynamicpb.Message {
	m := dynamicpb.NewMessage(md)
	for name, v := range fields {
		if v == nil {
			continue
		}
		f := md.Fields().ByName(protoreflect.Name(name))
		require.NotNil(t, f, "field %s", name)
		switch v := v.(type) {
		case time.Time:
			ts := dynamicpb.NewMessage(f.Message())
			ts.Set(f.Message().Fields().ByName("seconds"), protoreflect.ValueOfInt64(v.Unix()))
			ts.Set(f.Message().Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(v.Nanosecond())))
			m.Set(f, protoreflect.ValueOfMessage(ts))
		case map[string]any:
			m.Set(f, protoreflect.ValueOfMessage(dynamicMessage(t, f.Message(), v)))
		default:
			m.Set(f, protoreflect.ValueOf(v))
		}
	}
	return m
}

// protoPrice is a valid price message of price.proto; fields override its
// values.
func protoPrice(coin string, i int, usd string, fields map[string]any) map[string]any {
	rec := map[string]any{"coin_id": coin, "symbol": "SYM", "exchange_id": "binance", "usd_price": usd,
		"last_updated": time.UnixMilli(baseMillis + int64(i)*1000), "source": "test", "attribution": "qiflow"}
	for k, v := range fields {
		rec[k] = v
	}
	return rec
}

func protoOutput(t *testing.T, dsn, url string) *output {
	return newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nencoding: protobuf\nretry_initial_interval: 20ms\nretry_max_interval: 200ms\nschema_registry:\n  url: %q\n", dsn, url))
}

// TestProtobufTwinsOfTheJSONProbes writes the JSON tests' probes as
// Protobuf with the shipped price.proto: the smallest and the largest
// price, null (unset) optionals, a scale wider than the column's (refused,
// not rounded), a double in a numeric column (refused), and the wire
// format's rules with the same codes and reasons as in JSON.
func TestProtobufTwinsOfTheJSONProbes(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	schema := shippedSchema(t, "price.proto")
	id := reg.registerProto(t, "crypto-prices-proto-value", schema)
	// A writer whose market_cap is a double: a float is not an exact decimal.
	floaty := strings.Replace(schema, "optional string market_cap = 8;", "optional double market_cap = 8;", 1)
	require.NotEqual(t, schema, floaty)
	floatID := reg.registerProto(t, "floaty-value", floaty)
	o := protoOutput(t, dsn, reg.url())

	batch := service.MessageBatch{
		framedMessage(protoFrame(t, id, schema, protoPrice("tiny", 0, "0.00000001", nil), 0), 0),
		framedMessage(protoFrame(t, id, schema, protoPrice("huge", 1, "99999999999.99999999",
			map[string]any{"market_cap": "1320000000000.50", "change_24h": "-1.2345"}), 0), 1),
		framedMessage(protoFrame(t, id, schema, protoPrice("scale", 2, "0.123456789", nil), 0), 2),
		framedMessage(protoFrame(t, id, schema, protoPrice("negative", 3, "-3", nil), 0), 3),
		framedMessage(protoFrame(t, id, schema, protoPrice("blank", 4, "1", map[string]any{"exchange_id": "  "}), 0), 4),
		framedMessage(protoFrame(t, id, schema, protoPrice("nodecimal", 5, "12abc", nil), 0), 5),
		framedMessage(protoFrame(t, floatID, floaty, protoPrice("float", 6, "1", map[string]any{"market_cap": 1.5}), 0), 6),
		framedMessage(protoFrame(t, id, schema, protoPrice("", 7, "1", nil), 0), 7),
		framedMessage(protoFrame(t, id, schema, protoPrice("toobig", 8, "1000000000000", nil), 0), 8),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 7, "%v", failed)
	want := map[int][2]string{
		2: {"invalid_value", "more than 8 decimal places"},
		3: {"validation_failed", "usdPrice must be > 0, got -3"},
		4: {"invalid_field", "exchangeId"},
		5: {"invalid_field", "usdPrice"},
		6: {"invalid_field", "a float, not an exact decimal"},
		7: {"missing_field", "coinId is required"},
		8: {"invalid_value", ""},
	}
	for i, w := range want {
		c := result.Classify(failed[i])
		assert.Equal(t, result.Business, c.Category, "message %d", i)
		assert.Equal(t, w[0], c.Code, "message %d: %v", i, failed[i])
		assert.Contains(t, failed[i].Error(), w[1], "message %d", i)
	}

	assert.Equal(t, []string{
		"huge|99999999999.99999999|1320000000000.50|-|-1.2345|-",
		"tiny|0.00000001|-|-|-|-",
	}, queryStrings(t, dsn, `SELECT concat_ws('|', coin_id, usd_price, coalesce(market_cap::text, '-'), coalesce(volume_24h::text, '-'),
		coalesce(change_24h::text, '-'), coalesce(change_7d::text, '-')) FROM crypto_prices ORDER BY coin_id`))
	assert.Equal(t, []string{fmt.Sprint(baseMillis)}, queryStrings(t, dsn,
		`SELECT (extract(epoch FROM last_updated) * 1000)::bigint::text FROM crypto_prices WHERE coin_id = 'tiny'`), "Timestamp to the millisecond")
}

// TestProtobufTwoSchemaVersionsAndDecimalMessages reads a stream in which
// the producer moved to a newer schema: a field added, a decimal moved to
// a google.type.Decimal-like message imported by reference, a timestamp
// with microseconds, and the price as the second message of its file
// (message indexes [1]) and as a nested message (indexes [0, 0]).
func TestProtobufTwoSchemaVersionsAndDecimalMessages(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	v1 := shippedSchema(t, "price.proto")
	decimalProto := "syntax = \"proto3\";\npackage google.type;\nmessage Decimal { string value = 1; }\n"
	_, _, err := reg.RegisterSchema("google/type/decimal.proto", sr.Schema{Schema: decimalProto, Type: sr.TypeProtobuf})
	require.NoError(t, err)
	v2 := strings.Replace(v1, `import "google/protobuf/timestamp.proto";`, "import \"google/protobuf/timestamp.proto\";\nimport \"google/type/decimal.proto\";\n\nmessage Envelope {\n  message Inner { string coin_id = 1; string symbol = 2; string exchange_id = 3; google.type.Decimal usd_price = 4; google.protobuf.Timestamp last_updated = 5; string source = 6; string attribution = 7; }\n}", 1)
	v2 = strings.Replace(v2, "string usd_price = 4;", "google.type.Decimal usd_price = 4;", 1)
	v2 = strings.Replace(v2, "optional string change_7d = 11;", "optional string change_7d = 11;\n  string bid_price = 12;", 1)
	id1 := reg.registerProto(t, "crypto-prices-proto-value", v1)
	id2 := reg.registerProto(t, "crypto-prices-proto-value", v2, sr.SchemaReference{Name: "google/type/decimal.proto", Subject: "google/type/decimal.proto", Version: 1})
	require.NotEqual(t, id1, id2)
	o := protoOutput(t, dsn, reg.url())

	// protoFrame compiles v2 alone, so it is given the reference inline.
	v2inline := strings.Replace(v2, "import \"google/type/decimal.proto\";\n", "", 1)
	v2inline = strings.ReplaceAll(v2inline, "google.type.Decimal", "Decimal") + "\nmessage Decimal { string value = 1; }\n"
	micro := time.UnixMicro(baseMillis*1000 + 1_000_123)
	batch := service.MessageBatch{
		framedMessage(protoFrame(t, id1, v1, protoPrice("old", 0, "1.5", nil), 0), 0),
		framedMessage(protoFrame(t, id2, v2inline, protoPrice("new", 1, "", map[string]any{
			"usd_price": map[string]any{"value": "2.5"}, "bid_price": "2.4", "last_updated": micro}), 1), 1),
		framedMessage(protoFrame(t, id2, v2inline, map[string]any{"coin_id": "nested", "symbol": "N", "exchange_id": "x",
			"usd_price": map[string]any{"value": "3.25"}, "last_updated": time.UnixMilli(baseMillis), "source": "s", "attribution": "a"}, 0, 0), 2),
	}
	require.Empty(t, write(t, o, batch))
	assert.Equal(t, []string{
		"nested|3.25000000|" + fmt.Sprint(baseMillis*1000),
		"new|2.50000000|" + fmt.Sprint(baseMillis*1000+1_000_123),
		"old|1.50000000|" + fmt.Sprint(baseMillis*1000),
	}, queryStrings(t, dsn, `SELECT concat_ws('|', coin_id, usd_price, (extract(epoch FROM last_updated) * 1000000)::bigint) FROM crypto_prices ORDER BY coin_id`))
}

// TestProtobufFramingFaultsAreDeadLetteredWithAReason: an unknown id, a
// truncated payload, a wrong magic byte, missing message indexes and
// indexes that name no message each fail their message alone.
func TestProtobufFramingFaultsAreDeadLetteredWithAReason(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	schema := shippedSchema(t, "price.proto")
	id := reg.registerProto(t, "crypto-prices-proto-value", schema)
	o := protoOutput(t, dsn, reg.url())

	good := protoFrame(t, id, schema, protoPrice("good", 0, "1", nil), 0)
	unknown := protoFrame(t, 4242, schema, protoPrice("unknown", 1, "1", nil), 0)
	truncated := protoFrame(t, id, schema, protoPrice("truncated", 2, "1", nil), 0)
	truncated = truncated[:len(truncated)-3]
	magic := append([]byte{1}, good[1:]...)
	noIndexes := registry.AppendFrame(nil, id)
	badIndex := append(registry.AppendIndexes(registry.AppendFrame(nil, id), 7), good[6:]...)
	batch := service.MessageBatch{
		framedMessage(good, 0), framedMessage(unknown, 1), framedMessage(truncated, 2),
		framedMessage(magic, 3), framedMessage(noIndexes, 4), framedMessage(badIndex, 5),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 5, "%v", failed)
	want := map[int][2]string{
		1: {registry.CodeUnknownSchema, "schema id 4242 is not in the registry"},
		2: {registry.CodeInvalidPayload, "does not decode as qiflow.marketdata.Price"},
		3: {registry.CodeInvalidFrame, "magic byte is 0x01"},
		4: {registry.CodeInvalidFrame, "message indexes are missing"},
		5: {registry.CodeInvalidFrame, "message indexes [7] name no message"},
	}
	for i, w := range want {
		c := result.Classify(failed[i])
		assert.Equal(t, result.Business, c.Category, "message %d", i)
		assert.Equal(t, w[0], c.Code, "message %d: %v", i, failed[i])
		assert.Contains(t, failed[i].Error(), w[1], "message %d", i)
	}
	assert.Equal(t, 1, count(t, dsn, "crypto_prices"))
}

// TestProtobufRegistryThatGoesAwayAndComesBack: an uncached schema waits
// for the registry (not dead-lettered); a cached one needs no registry.
func TestProtobufRegistryThatGoesAwayAndComesBack(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	v1 := shippedSchema(t, "price.proto")
	id1 := reg.registerProto(t, "crypto-prices-proto-value", v1)
	v2 := strings.Replace(v1, "optional string change_7d = 11;", "optional string change_7d = 11;\n  string note = 12;", 1)
	id2 := reg.registerProto(t, "crypto-prices-proto-value", v2)
	o := protoOutput(t, dsn, reg.url())
	require.Empty(t, write(t, o, service.MessageBatch{framedMessage(protoFrame(t, id1, v1, protoPrice("cached", 0, "1", nil), 0), 0)}))

	reg.stop()
	require.Empty(t, write(t, o, service.MessageBatch{framedMessage(protoFrame(t, id1, v1, protoPrice("cached", 1, "1", nil), 0), 1)}),
		"a cached schema needs no registry")
	writeWaitsForTheRegistry(t, o, reg, framedMessage(protoFrame(t, id2, v2, protoPrice("waited", 2, "1", map[string]any{"note": "v2"}), 0), 2))
	assert.Equal(t, []string{"cached", "cached", "waited"}, queryStrings(t, dsn, "SELECT coin_id FROM crypto_prices ORDER BY coin_id, last_updated"))
}
