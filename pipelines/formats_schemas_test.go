package pipelines_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/avro"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/qicore/qiflow/internal/avrorow"
	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/jsonschemarow"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/schema"
)

// shippedKinds pairs each wire-format kind with its shipped schemas.
var shippedKinds = []struct {
	kind  *marketdata.Kind
	file  string // pipelines/schemas/<file>.avsc and .proto
	proto string // the .proto's message
}{
	{marketdata.Price, "price", "qiflow.marketdata.Price"},
	{marketdata.OHLCV, "ohlcv", "qiflow.marketdata.OHLCV"},
	{marketdata.Analytics, "analytics", "qiflow.marketdata.Analytics"},
}

// snake is the column of a wire field: coinId → coin_id, volume24h →
// volume_24h.
func snake(field string) string {
	return strings.ToLower(regexp.MustCompile(`([a-z])([A-Z0-9])`).ReplaceAllString(
		regexp.MustCompile(`([a-z])([A-Z])`).ReplaceAllString(field, "${1}_${2}"), "${1}_${2}"))
}

// columnTypes are schema.yaml's column types and nullability by table and
// column.
func columnTypes(t *testing.T) map[string]map[string]schema.Column {
	spec, err := schema.Load("schema.yaml")
	require.NoError(t, err)
	out := map[string]map[string]schema.Column{}
	for _, tbl := range spec.Tables {
		out[tbl.Name] = map[string]schema.Column{}
		for _, c := range tbl.Columns {
			out[tbl.Name][c.Name] = c
		}
	}
	return out
}

// TestShippedAvroSchemasMatchTheWireFormat keeps pipelines/schemas/*.avsc
// in step with the wire format and schema.yaml: the same fields in the
// same order, decimals of their columns' precision and scale, timestamps
// in milliseconds, and a union with null exactly for the optional fields
// (those whose column may be NULL or has a default).
func TestShippedAvroSchemasMatchTheWireFormat(t *testing.T) {
	types := columnTypes(t)
	for _, k := range shippedKinds {
		t.Run(k.file, func(t *testing.T) {
			text, err := os.ReadFile("schemas/" + k.file + ".avsc")
			require.NoError(t, err)
			s, err := avro.Parse(string(text))
			require.NoError(t, err)
			root := s.Root()
			var names []string
			for _, f := range root.Fields {
				names = append(names, f.Name)
				col, ok := types[k.kind.Table][snake(f.Name)]
				require.True(t, ok, "%s has no column %s", f.Name, snake(f.Name))
				typ, optional := f.Type, false
				if typ.Type == "union" {
					require.Len(t, typ.Branches, 2, f.Name)
					assert.Equal(t, "null", typ.Branches[0].Type, "%s: null first, so that the default is null", f.Name)
					assert.True(t, f.HasDefault && f.Default == nil, "%s defaults to null", f.Name)
					typ, optional = typ.Branches[1], true
				}
				assert.Equal(t, !col.NotNull || col.Default != "", optional, "%s is optional exactly when %s may be omitted", f.Name, col.Name)
				switch {
				case strings.HasPrefix(col.Type, "numeric("):
					assert.Equal(t, "decimal", typ.LogicalType, f.Name)
					assert.Equal(t, col.Type, fmt.Sprintf("numeric(%d,%d)", typ.Precision, typ.Scale), f.Name)
				case strings.HasPrefix(col.Type, "timestamp"):
					assert.Equal(t, "timestamp-millis", typ.LogicalType, f.Name)
				case col.Type == "integer":
					assert.Equal(t, "int", typ.Type, f.Name)
				default:
					assert.Equal(t, "string", typ.Type, "%s for %s", f.Name, col.Type)
				}
			}
			assert.Equal(t, k.kind.Fields(), names, "the wire format's fields, in its order")
		})
	}
}

// TestShippedProtoSchemasMatchTheWireFormat compiles pipelines/schemas/
// *.proto and checks that each message has the wire format's fields (by
// JSON name, in field-number order), optional exactly where the .avsc is.
func TestShippedProtoSchemasMatchTheWireFormat(t *testing.T) {
	types := columnTypes(t)
	compiler := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{"schemas"}})}
	for _, k := range shippedKinds {
		t.Run(k.file, func(t *testing.T) {
			files, err := compiler.Compile(context.Background(), k.file+".proto")
			require.NoError(t, err)
			desc := files[0].Messages().ByName(protoreflect.FullName(k.proto).Name())
			require.NotNil(t, desc, k.proto)
			fields := desc.(protoreflect.MessageDescriptor).Fields()
			var names []string
			for i := range fields.Len() {
				f := fields.Get(i)
				names = append(names, f.JSONName())
				col := types[k.kind.Table][string(f.Name())]
				require.NotEmpty(t, col.Name, "%s has no column", f.Name())
				assert.Equal(t, !col.NotNull || col.Default != "", f.HasPresence() && f.Message() == nil, "%s is optional exactly when %s may be omitted", f.Name(), col.Name)
			}
			assert.Equal(t, k.kind.Fields(), names)
		})
	}
}

// TestShippedAvroSchemasGiveTheRowsOfJSON encodes a message of each kind
// with its shipped schema and reads it back through the Avro row path: the
// row equals the JSON wire format's.
func TestShippedAvroSchemasGiveTheRowsOfJSON(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 123e6, time.UTC)
	messages := map[string]struct {
		json string
		avro map[string]any
	}{
		"price": {`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"0.00000001","lastUpdated":"2026-11-26T12:00:00.123Z","source":"s","attribution":"a","marketCap":"99999999999.99","change7d":"-1.5"}`,
			map[string]any{"coinId": "bitcoin", "symbol": "BTC", "exchangeId": "binance", "usdPrice": "0.00000001", "lastUpdated": at, "source": "s", "attribution": "a",
				"marketCap": "99999999999.99", "volume24h": nil, "change24h": nil, "change7d": "-1.5"}},
		"ohlcv": {`{"coinId":"btc","exchangeId":"kraken","timestamp":"2026-11-26T12:00:00.123Z","open":"10","high":"12","low":"9","close":"11","volume":"0.5","timeframe":"1h","source":"s","attribution":"a"}`,
			map[string]any{"coinId": "btc", "exchangeId": "kraken", "timestamp": at, "open": "10", "high": "12", "low": "9", "close": "11", "volume": "0.5", "timeframe": "1h", "source": "s", "attribution": "a"}},
		"analytics": {`{"timestamp":"2026-11-26T12:00:00.123Z","totalMarketCap":"2500000000000.12","totalVolume":"98000000000","btcDominance":"54.321","activeCryptocurrencies":12000,"markets":900,"marketCapChange24h":"-0.5","source":"s","attribution":"a"}`,
			map[string]any{"timestamp": at, "totalMarketCap": "2500000000000.12", "totalVolume": "98000000000", "btcDominance": "54.321", "activeCryptocurrencies": int32(12000),
				"markets": int32(900), "marketCapChange24h": "-0.5", "source": "s", "attribution": "a", "exchangeId": nil, "ethDominance": nil}},
	}
	for _, k := range shippedKinds {
		t.Run(k.file, func(t *testing.T) {
			m := messages[k.kind.Name]
			text, err := os.ReadFile("schemas/" + k.file + ".avsc")
			require.NoError(t, err)
			payload, err := avro.MustParse(string(text)).Encode(m.avro)
			require.NoError(t, err)
			reader, err := avrorow.Compile(string(text), k.kind)
			require.NoError(t, err)
			fromAvro := make([]datum.Datum, len(k.kind.Columns))
			require.NoError(t, reader.DecodeRow(payload, fromAvro))
			fromJSON := make([]datum.Datum, len(k.kind.Columns))
			require.NoError(t, k.kind.DecodeInto([]byte(m.json), fromJSON))
			for i, col := range k.kind.Columns {
				a, j := fromAvro[i], fromJSON[i]
				require.Equal(t, j.Kind, a.Kind, col)
				if a.Kind == datum.Decimal {
					assert.Zero(t, a.Dec.Cmp(j.Dec), "%s: %s vs %s", col, a.Dec, j.Dec)
					continue
				}
				assert.Equal(t, j.Go(), a.Go(), col)
			}
		})
	}
}

// jsonSchemaProperties reads a shipped .schema.json: its properties in
// document order, and its required fields.
func jsonSchemaProperties(t *testing.T, file string) (names []string, props map[string]map[string]any, required []string) {
	t.Helper()
	text, err := os.ReadFile("schemas/" + file + ".schema.json")
	require.NoError(t, err)
	var doc struct {
		Properties json.RawMessage `json:"properties"`
		Required   []string        `json:"required"`
	}
	require.NoError(t, json.Unmarshal(text, &doc))
	require.NoError(t, json.Unmarshal(doc.Properties, &props))
	dec := json.NewDecoder(bytes.NewReader(doc.Properties))
	_, err = dec.Token() // {
	require.NoError(t, err)
	for dec.More() {
		key, err := dec.Token()
		require.NoError(t, err)
		names = append(names, key.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return names, props, doc.Required
}

// TestShippedJSONSchemasMatchTheWireFormat keeps pipelines/schemas/
// *.schema.json in step with the wire format and schema.yaml: the same
// fields in the same order, required exactly where the .avsc is not
// optional, null allowed exactly for the optional fields, decimals as
// strings or numbers, timestamps as strings or epoch milliseconds, and
// varchar lengths as maxLength.
func TestShippedJSONSchemasMatchTheWireFormat(t *testing.T) {
	types := columnTypes(t)
	for _, k := range shippedKinds {
		t.Run(k.file, func(t *testing.T) {
			names, props, required := jsonSchemaProperties(t, k.file)
			assert.Equal(t, k.kind.Fields(), names, "the wire format's fields, in its order")
			var wantRequired []string
			for _, name := range names {
				col, ok := types[k.kind.Table][snake(name)]
				require.True(t, ok, "%s has no column %s", name, snake(name))
				optional := !col.NotNull || col.Default != ""
				if !optional {
					wantRequired = append(wantRequired, name)
				}
				var typ []string
				switch v := props[name]["type"].(type) {
				case string:
					typ = []string{v}
				case []any:
					for _, s := range v {
						typ = append(typ, s.(string))
					}
				}
				assert.Equal(t, optional, slices.Contains(typ, "null"), "%s allows null exactly when %s may be omitted", name, col.Name)
				typ = slices.DeleteFunc(typ, func(s string) bool { return s == "null" })
				switch {
				case strings.HasPrefix(col.Type, "numeric("):
					assert.Equal(t, []string{"string", "number"}, typ, name)
					assert.Contains(t, props[name]["description"], col.Type, name)
				case strings.HasPrefix(col.Type, "timestamp"):
					assert.Equal(t, []string{"string", "integer"}, typ, name)
				case col.Type == "integer":
					assert.Equal(t, []string{"integer"}, typ, name)
				default:
					assert.Equal(t, []string{"string"}, typ, "%s for %s", name, col.Type)
					if n, ok := strings.CutPrefix(col.Type, "varchar("); ok {
						assert.Equal(t, strings.TrimSuffix(n, ")"), fmt.Sprint(props[name]["maxLength"]), name)
					}
				}
			}
			assert.Equal(t, wantRequired, required)
		})
	}
}

// TestShippedJSONSchemasAcceptTheWireFormat reads a message of each kind
// through the JSON Schema row path with its shipped schema: it validates,
// and its row equals the JSON wire format's; the same message without a
// required field, or with a text too long for its column, breaks the
// schema.
func TestShippedJSONSchemasAcceptTheWireFormat(t *testing.T) {
	messages := map[string]string{
		"price":     `{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":0.00000001,"lastUpdated":"2026-11-26T12:00:00.123Z","source":"s","attribution":"a","marketCap":"99999999999.99","change7d":null}`,
		"ohlcv":     `{"coinId":"btc","exchangeId":"kraken","timestamp":1795694400123,"open":"10","high":"12","low":"9","close":"11","volume":"0.5","timeframe":"1h","source":"s","attribution":"a"}`,
		"analytics": `{"timestamp":"2026-11-26T12:00:00.123Z","totalMarketCap":"2500000000000.12","totalVolume":98000000000,"btcDominance":"54.321","activeCryptocurrencies":12000,"markets":900,"marketCapChange24h":"-0.5","source":"s","attribution":"a"}`,
	}
	for _, k := range shippedKinds {
		t.Run(k.file, func(t *testing.T) {
			text, err := os.ReadFile("schemas/" + k.file + ".schema.json")
			require.NoError(t, err)
			reader, err := jsonschemarow.Compile(string(text), nil, k.kind)
			require.NoError(t, err)
			msg := messages[k.kind.Name]
			fromSchema := make([]datum.Datum, len(k.kind.Columns))
			require.NoError(t, reader.DecodeRow([]byte(msg), fromSchema))
			fromJSON := make([]datum.Datum, len(k.kind.Columns))
			require.NoError(t, k.kind.DecodeInto([]byte(msg), fromJSON))
			assert.Equal(t, fromJSON, fromSchema)

			var m map[string]any
			require.NoError(t, json.Unmarshal([]byte(msg), &m))
			delete(m, "source")
			missing, err := json.Marshal(m)
			require.NoError(t, err)
			err = reader.DecodeRow(missing, fromSchema)
			require.Error(t, err)
			assert.Equal(t, jsonschemarow.CodeSchemaViolation, result.Classify(err).Code)
			assert.Contains(t, err.Error(), "missing property 'source'")

			m["source"] = strings.Repeat("s", 65)
			long, err := json.Marshal(m)
			require.NoError(t, err)
			err = reader.DecodeRow(long, fromSchema)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "at /source: ")
		})
	}
}
