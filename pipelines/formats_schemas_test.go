package pipelines_test

import (
	"context"
	"fmt"
	"os"
	"regexp"
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
	"github.com/qicore/qiflow/internal/marketdata"
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
