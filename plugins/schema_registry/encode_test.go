package schemaregistry

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// TestEncodedPricesDecodeToTheRowsOfTheirJSON encodes feed messages as a
// user's config would, against franz-go's in-process registry, and reads
// them back through the timescale output's decoder: the rows equal the
// JSON's, and the schema is registered once under the subject.
func TestEncodedPricesDecodeToTheRowsOfTheirJSON(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	conf, err := encodeSpec().ParseYAML(fmt.Sprintf(`
format: price
schema_file: ../../pipelines/schemas/price.avsc
subject: crypto-prices-avro-value
url: %s
`, reg.URL()), nil)
	require.NoError(t, err)
	enc, err := newEncoderFromConfig(conf)
	require.NoError(t, err)
	dec, err := registry.NewDecoder(registry.Config{URL: reg.URL()}, registry.EncodingAvro, marketdata.Price)
	require.NoError(t, err)

	messages := []string{
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"67234.12345678","lastUpdated":1764158400123,"source":"s","attribution":"a","marketCap":1320000000000.5,"volume24h":null}`,
		`{"coinId":"dust","symbol":"D","exchangeId":"kraken","usdPrice":0.00000001,"lastUpdated":"2026-11-26T12:00:00.5Z","source":"s","attribution":"a","change7d":"-3.25"}`,
	}
	for _, m := range messages {
		out, err := enc.Process(context.Background(), service.NewMessage([]byte(m)))
		require.NoError(t, err)
		framed, err := out[0].AsBytes()
		require.NoError(t, err)
		require.NoError(t, dec.Load(context.Background(), [][]byte{framed}, func(context.Context, int, error) error { return fmt.Errorf("registry down") }))
		fromAvro := make([]datum.Datum, len(marketdata.Price.Columns))
		require.NoError(t, dec.DecodeInto(framed, fromAvro))
		fromJSON := make([]datum.Datum, len(marketdata.Price.Columns))
		require.NoError(t, marketdata.Price.DecodeInto([]byte(m), fromJSON))
		for i, col := range marketdata.Price.Columns {
			require.Equal(t, fromJSON[i].Kind, fromAvro[i].Kind, col)
			if fromJSON[i].Kind == datum.Decimal {
				assert.Zero(t, fromJSON[i].Dec.Cmp(fromAvro[i].Dec), col)
			} else {
				assert.Equal(t, fromJSON[i].Go(), fromAvro[i].Go(), col)
			}
		}
	}
	versions, ok := reg.GetSchema("crypto-prices-avro-value", 1)
	require.True(t, ok)
	assert.Equal(t, enc.id, versions.ID)
	_, again := reg.GetSchema("crypto-prices-avro-value", 2)
	assert.False(t, again, "registered once")
}

// TestEncodingRefusesWhatTheWireFormatRefuses: a bad message fails with the
// wire format's code, not as a malformed Avro record.
func TestEncodingRefusesWhatTheWireFormatRefuses(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	conf, err := encodeSpec().ParseYAML(fmt.Sprintf("format: price\nschema_file: ../../pipelines/schemas/price.avsc\nsubject: s-value\nurl: %s\n", reg.URL()), nil)
	require.NoError(t, err)
	enc, err := newEncoderFromConfig(conf)
	require.NoError(t, err)
	_, err = enc.Process(context.Background(), service.NewMessage([]byte(`{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":"-3","lastUpdated":1,"source":"s","attribution":"a"}`)))
	require.Error(t, err)
	assert.Equal(t, marketdata.CodeValidation, result.Classify(err).Code)
}

// TestJSONSchemaEncodingFramesTheMessageAndRefusesWhatTheSchemaRefuses
// encodes with the shipped price.schema.json: the payload is the message's
// own bytes behind the frame, registered as a JSON Schema, and it decodes
// to the row of its JSON through the timescale output's decoder; a message
// that breaks the schema, or the wire format, fails with its code.
func TestJSONSchemaEncodingFramesTheMessageAndRefusesWhatTheSchemaRefuses(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	conf, err := encodeSpec().ParseYAML(fmt.Sprintf("format: price\nschema_file: ../../pipelines/schemas/price.schema.json\nsubject: crypto-prices-json-value\nurl: %s\n", reg.URL()), nil)
	require.NoError(t, err)
	enc, err := newEncoderFromConfig(conf)
	require.NoError(t, err)
	dec, err := registry.NewDecoder(registry.Config{URL: reg.URL()}, registry.EncodingJSONSchema, marketdata.Price)
	require.NoError(t, err)

	m := `{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":67234.12345678,"lastUpdated":1764158400123,"source":"s","attribution":"a"}`
	out, err := enc.Process(context.Background(), service.NewMessage([]byte(m)))
	require.NoError(t, err)
	framed, err := out[0].AsBytes()
	require.NoError(t, err)
	id, payload, err := registry.SplitFrame(framed)
	require.NoError(t, err)
	assert.Equal(t, m, string(payload))
	s, ok := reg.GetSchema("crypto-prices-json-value", 1)
	require.True(t, ok)
	assert.Equal(t, id, s.ID)
	assert.Equal(t, sr.TypeJSON, s.Schema.Type)
	require.NoError(t, dec.Load(context.Background(), [][]byte{framed}, func(context.Context, int, error) error { return fmt.Errorf("registry down") }))
	row := make([]datum.Datum, len(marketdata.Price.Columns))
	require.NoError(t, dec.DecodeInto(framed, row))
	assert.Equal(t, "67234.12345678", row[slices.Index(marketdata.Price.Columns, "usd_price")].Dec.String())

	_, err = enc.Process(context.Background(), service.NewMessage([]byte(`{"coinId":"b","symbol":7,"exchangeId":"x","usdPrice":"3","lastUpdated":1,"source":"s","attribution":"a"}`)))
	require.Error(t, err)
	assert.Equal(t, registry.CodeSchemaViolation, result.Classify(err).Code)
	assert.Contains(t, err.Error(), "at /symbol: got number, want string")
	_, err = enc.Process(context.Background(), service.NewMessage([]byte(`{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":"-3","lastUpdated":1,"source":"s","attribution":"a"}`)))
	require.Error(t, err)
	assert.Equal(t, marketdata.CodeValidation, result.Classify(err).Code)
}
