package timescale_output

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// registerJSONSchema registers a JSON Schema under subject and returns its
// id.
func (r *testRegistry) registerJSONSchema(t *testing.T, subject, schema string, refs ...sr.SchemaReference) int {
	t.Helper()
	id, _, err := r.RegisterSchema(subject, sr.Schema{Schema: schema, Type: sr.TypeJSON, References: refs})
	require.NoError(t, err)
	return id
}

// jsonFrame frames a JSON document with id, as Confluent's JSON Schema
// serializer does: no message indexes.
func jsonFrame(id int, doc string) []byte {
	return append(registry.AppendFrame(nil, id), doc...)
}

// jsonPrice is a valid price document; fields override its members, given
// as raw JSON ("" removes one).
func jsonPrice(coin string, i int, usd string, fields map[string]string) string {
	members := map[string]string{"coinId": fmt.Sprintf("%q", coin), "symbol": `"SYM"`, "exchangeId": `"binance"`, "usdPrice": usd,
		"lastUpdated": fmt.Sprint(baseMillis + int64(i)*1000), "source": `"test"`, "attribution": `"qiflow"`}
	for k, v := range fields {
		members[k] = v
	}
	var b strings.Builder
	b.WriteByte('{')
	for _, k := range []string{"coinId", "symbol", "exchangeId", "usdPrice", "lastUpdated", "source", "attribution", "marketCap", "volume24h", "change24h", "change7d", "bidPrice"} {
		if v := members[k]; v != "" {
			if b.Len() > 1 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%q:%s", k, v)
		}
	}
	b.WriteByte('}')
	return b.String()
}

func jsonSchemaOutput(t *testing.T, dsn, url string) *output {
	return newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nencoding: json_schema\nretry_initial_interval: 20ms\nretry_max_interval: 200ms\nschema_registry:\n  url: %q\n", dsn, url))
}

// TestJSONSchemaTwinsOfTheJSONProbes writes the JSON tests' probes as
// Confluent JSON Schema payloads with the shipped price.schema.json: the
// smallest and the largest price as a JSON number and as a string, null
// optionals, a scale wider than the column's (refused, not rounded), the
// wire format's rules with the same codes as unframed JSON, and what only
// the schema forbids (a number where it wants a string, a text longer than
// its column, a missing required field) refused as schema_violation with
// the place in the document.
func TestJSONSchemaTwinsOfTheJSONProbes(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	id := reg.registerJSONSchema(t, "crypto-prices-json-value", shippedSchema(t, "price.schema.json"))
	o := jsonSchemaOutput(t, dsn, reg.url())

	docs := []string{
		jsonPrice("tiny", 0, "0.00000001", map[string]string{"marketCap": "null"}),
		jsonPrice("huge", 1, `"99999999999.99999999"`, map[string]string{"marketCap": `"1320000000000.50"`, "change24h": "-1.2345"}),
		jsonPrice("scale", 2, "0.123456789", nil),
		jsonPrice("negative", 3, `"-3"`, nil),
		jsonPrice("blank", 4, "1", map[string]string{"exchangeId": `"  "`}),
		jsonPrice("nodecimal", 5, `"12abc"`, nil),
		jsonPrice("numbersymbol", 6, "1", map[string]string{"symbol": "42"}),
		jsonPrice("longsymbol", 7, "1", map[string]string{"symbol": fmt.Sprintf("%q", strings.Repeat("S", 33))}),
		jsonPrice("nosource", 8, "1", map[string]string{"source": ""}),
		jsonPrice("toobig", 9, "1000000000000", nil),
	}
	batch := make(service.MessageBatch, len(docs))
	for i, d := range docs {
		batch[i] = framedMessage(jsonFrame(id, d), i)
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 8, "%v", failed)
	want := map[int][2]string{
		2: {"invalid_value", "more than 8 decimal places"},
		3: {"validation_failed", "usdPrice must be > 0, got -3"},
		4: {"invalid_field", "exchangeId"},
		5: {"invalid_field", "usdPrice"},
		6: {registry.CodeSchemaViolation, "at /symbol: got number, want string"},
		7: {registry.CodeSchemaViolation, "at /symbol: maxLength: got 33, want 32"},
		8: {registry.CodeSchemaViolation, "at /: missing property 'source'"},
		9: {"invalid_value", ""},
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
}

// TestJSONSchemaTwoSchemaVersionsAndReferences reads a stream in which the
// producer moved to a newer schema that adds a field and takes its decimal
// definition from a referenced schema, registered under its own subject.
func TestJSONSchemaTwoSchemaVersionsAndReferences(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	v1 := shippedSchema(t, "price.schema.json")
	decimalSchema := `{"$schema": "http://json-schema.org/draft-07/schema#", "type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}`
	reg.registerJSONSchema(t, "decimal.schema.json", decimalSchema)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(v1), &doc))
	props := doc["properties"].(map[string]any)
	props["usdPrice"] = map[string]any{"$ref": "decimal.schema.json"}
	props["bidPrice"] = map[string]any{"$ref": "decimal.schema.json"}
	v2bytes, err := json.Marshal(doc)
	require.NoError(t, err)
	id1 := reg.registerJSONSchema(t, "crypto-prices-json-value", v1)
	id2 := reg.registerJSONSchema(t, "crypto-prices-json-value", string(v2bytes),
		sr.SchemaReference{Name: "decimal.schema.json", Subject: "decimal.schema.json", Version: 1})
	require.NotEqual(t, id1, id2)
	o := jsonSchemaOutput(t, dsn, reg.url())

	batch := service.MessageBatch{
		framedMessage(jsonFrame(id1, jsonPrice("old", 0, "1.5", nil)), 0),
		framedMessage(jsonFrame(id2, jsonPrice("new", 1, `"2.5"`, map[string]string{"bidPrice": `"2.4"`})), 1),
		framedMessage(jsonFrame(id2, jsonPrice("number", 2, "2.5", nil)), 2),
		framedMessage(jsonFrame(id2, jsonPrice("badbid", 3, `"2.5"`, map[string]string{"bidPrice": `"2.4x"`})), 3),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 2, "%v", failed)
	assert.Contains(t, failed[2].Error(), "at /usdPrice: got number, want string", "v2's usdPrice is the referenced string schema")
	assert.Contains(t, failed[3].Error(), "at /bidPrice: ")
	assert.Equal(t, []string{"new|2.50000000", "old|1.50000000"},
		queryStrings(t, dsn, `SELECT concat_ws('|', coin_id, usd_price) FROM crypto_prices ORDER BY coin_id`))
}

// TestJSONSchemaFramingFaultsAreDeadLetteredWithAReason: an unknown id, a
// truncated payload, a wrong magic byte, a frame with no document and a
// schema that is not a JSON Schema each fail their message alone.
func TestJSONSchemaFramingFaultsAreDeadLetteredWithAReason(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	id := reg.registerJSONSchema(t, "crypto-prices-json-value", shippedSchema(t, "price.schema.json"))
	arrayID := reg.registerJSONSchema(t, "arrays-value", `{"type": "array"}`)
	avroID := reg.register(t, "avro-value", shippedSchema(t, "price.avsc"))
	o := jsonSchemaOutput(t, dsn, reg.url())

	good := jsonFrame(id, jsonPrice("good", 0, "1", nil))
	batch := service.MessageBatch{
		framedMessage(good, 0),
		framedMessage(jsonFrame(4242, jsonPrice("unknown", 1, "1", nil)), 1),
		framedMessage(good[:len(good)-3], 2),
		framedMessage(append([]byte{1}, good[1:]...), 3),
		framedMessage(registry.AppendFrame(nil, id), 4),
		framedMessage(jsonFrame(arrayID, "[]"), 5),
		framedMessage(jsonFrame(avroID, jsonPrice("avro", 6, "1", nil)), 6),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 6, "%v", failed)
	want := map[int][2]string{
		1: {registry.CodeUnknownSchema, "schema id 4242 is not in the registry"},
		2: {registry.CodeInvalidPayload, "the payload is not one JSON document"},
		3: {registry.CodeInvalidFrame, "magic byte is 0x01"},
		4: {registry.CodeInvalidPayload, "the payload is not one JSON document"},
		5: {registry.CodeUnsupportedSchema, `its root "type" is array, and a market-data message is an object`},
		6: {registry.CodeUnsupportedSchema, "is a AVRO schema, and this pipeline reads JSON"},
	}
	for i, w := range want {
		c := result.Classify(failed[i])
		assert.Equal(t, result.Business, c.Category, "message %d", i)
		assert.Equal(t, w[0], c.Code, "message %d: %v", i, failed[i])
		assert.Contains(t, failed[i].Error(), w[1], "message %d", i)
	}
	assert.Equal(t, 1, count(t, dsn, "crypto_prices"))
}

// TestJSONSchemaRegistryThatGoesAwayAndComesBack: an uncached schema waits
// for the registry (not dead-lettered); a cached one needs no registry.
func TestJSONSchemaRegistryThatGoesAwayAndComesBack(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	v1 := shippedSchema(t, "price.schema.json")
	id1 := reg.registerJSONSchema(t, "crypto-prices-json-value", v1)
	v2 := strings.Replace(v1, `"additionalProperties": true`, `"additionalProperties": true, "$comment": "v2"`, 1)
	require.NotEqual(t, v1, v2)
	id2 := reg.registerJSONSchema(t, "crypto-prices-json-value", v2)
	o := jsonSchemaOutput(t, dsn, reg.url())
	require.Empty(t, write(t, o, service.MessageBatch{framedMessage(jsonFrame(id1, jsonPrice("cached", 0, "1", nil)), 0)}))

	reg.stop()
	require.Empty(t, write(t, o, service.MessageBatch{framedMessage(jsonFrame(id1, jsonPrice("cached", 1, "1", nil)), 1)}),
		"a cached schema needs no registry")
	writeWaitsForTheRegistry(t, o, reg, framedMessage(jsonFrame(id2, jsonPrice("waited", 2, "1", nil)), 2))
	assert.Equal(t, []string{"cached", "cached", "waited"}, queryStrings(t, dsn, "SELECT coin_id FROM crypto_prices ORDER BY coin_id, last_updated"))
}
