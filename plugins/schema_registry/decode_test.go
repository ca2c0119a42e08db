package schemaregistry

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// newTestEncoder is schema_registry_encode with schemaFile, against url.
func newTestEncoder(t *testing.T, schemaFile, url string) *encoder {
	t.Helper()
	conf, err := encodeSpec().ParseYAML(fmt.Sprintf("format: price\nschema_file: ../../pipelines/schemas/%s\nsubject: crypto-prices-value\nurl: %s\n", schemaFile, url), nil)
	require.NoError(t, err)
	enc, err := newEncoderFromConfig(conf)
	require.NoError(t, err)
	return enc
}

// newTestDecoder is schema_registry_decode of prices in encoding, against
// url.
func newTestDecoder(t *testing.T, encoding, url string) *decoder {
	t.Helper()
	conf, err := decodeSpec().ParseYAML(fmt.Sprintf("format: price\nencoding: %s\nurl: %s\nretry_interval: 50ms\n", encoding, url), nil)
	require.NoError(t, err)
	dec, err := newDecoderFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	return dec
}

// process runs p on one message and returns what it made.
func process(t *testing.T, p service.Processor, data []byte) *service.Message {
	t.Helper()
	out, err := p.Process(context.Background(), service.NewMessage(data))
	require.NoError(t, err)
	require.Len(t, out, 1)
	return out[0]
}

// TestDecodedMessagesAreTheWireFormatOfTheirJSON encodes wire-format
// prices as Avro and as JSON Schema payloads with the shipped schemas and
// decodes them with schema_registry_decode: the result is wire-format JSON
// whose row equals the original's (the smallest and largest prices
// exactly, absent optionals absent), with the schema id as metadata.
func TestDecodedMessagesAreTheWireFormatOfTheirJSON(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	messages := []string{
		`{"coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"99999999999.99999999","lastUpdated":1764158400123,"source":"s","attribution":"a","marketCap":1320000000000.5}`,
		`{"coinId":"dust","symbol":"D","exchangeId":"kraken","usdPrice":0.00000001,"lastUpdated":"2026-11-26T12:00:00.5Z","source":"s","attribution":"a \"quoted\"","change7d":"-3.25"}`,
	}
	for _, enc := range []struct{ encoding, file string }{{registry.EncodingAvro, "price.avsc"}, {registry.EncodingJSONSchema, "price.schema.json"}} {
		t.Run(enc.encoding, func(t *testing.T) {
			encoder := newTestEncoder(t, enc.file, reg.URL())
			decoder := newTestDecoder(t, enc.encoding, reg.URL())
			for _, m := range messages {
				framed, err := process(t, encoder, []byte(m)).AsBytes()
				require.NoError(t, err)
				out := process(t, decoder, framed)
				require.NoError(t, out.GetError())
				decoded, err := out.AsBytes()
				require.NoError(t, err)
				want := make([]datum.Datum, len(marketdata.Price.Columns))
				require.NoError(t, marketdata.Price.DecodeInto([]byte(m), want))
				got := make([]datum.Datum, len(marketdata.Price.Columns))
				require.NoError(t, marketdata.Price.DecodeInto(decoded, got), string(decoded))
				for i, col := range marketdata.Price.Columns {
					require.Equal(t, want[i].Kind, got[i].Kind, col)
					if want[i].Kind == datum.Decimal {
						assert.Zero(t, want[i].Dec.Cmp(got[i].Dec), "%s: %s", col, decoded)
					} else {
						assert.Equal(t, want[i].Go(), got[i].Go(), col)
					}
				}
				id, ok := out.MetaGet(MetaSchemaID)
				assert.True(t, ok)
				assert.Equal(t, fmt.Sprint(encoder.id), id)
			}
		})
	}
	encoder := newTestEncoder(t, "price.avsc", reg.URL())
	framed, err := process(t, encoder, []byte(messages[0])).AsBytes()
	require.NoError(t, err)
	decoded, err := process(t, newTestDecoder(t, registry.EncodingAvro, reg.URL()), framed).AsBytes()
	require.NoError(t, err)
	assert.Equal(t, `{"lastUpdated":"2025-11-26T12:00:00.123Z","coinId":"bitcoin","symbol":"BTC","exchangeId":"binance","usdPrice":"99999999999.99999999","marketCap":"1320000000000.50","source":"s","attribution":"a"}`, string(decoded))
}

// TestDecodeFaultsCarryTheDeadLetterHeaders: a wrong magic byte, an
// unknown schema id, a truncated payload and a broken rule each fail their
// message alone, unchanged, with the code and reason in the dead-letter
// headers, for a switch output to route.
func TestDecodeFaultsCarryTheDeadLetterHeaders(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	encoder := newTestEncoder(t, "price.avsc", reg.URL())
	good, err := process(t, encoder, []byte(`{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":"3","lastUpdated":1,"source":"s","attribution":"a"}`)).AsBytes()
	require.NoError(t, err)
	decoder := newTestDecoder(t, registry.EncodingAvro, reg.URL())

	for _, c := range []struct {
		name, code, reason string
		data               []byte
	}{
		{"magic", registry.CodeInvalidFrame, "magic byte is 0x07", append([]byte{7}, good[1:]...)},
		{"unknown", registry.CodeUnknownSchema, "schema id 4242 is not in the registry", append(registry.AppendFrame(nil, 4242), good[5:]...)},
		{"truncated", registry.CodeInvalidPayload, "", good[:len(good)-4]},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := process(t, decoder, c.data)
			require.Error(t, out.GetError())
			assert.Contains(t, out.GetError().Error(), c.reason)
			code, _ := out.MetaGet(result.HeaderErrorCode)
			assert.Equal(t, c.code, code)
			category, _ := out.MetaGet(result.HeaderErrorCategory)
			assert.Equal(t, "BUSINESS", category)
			data, err := out.AsBytes()
			require.NoError(t, err)
			assert.Equal(t, c.data, data, "the message is left as it came")
		})
	}
}

// TestDecodeWaitsForARegistryThatIsDown: a message whose schema is not
// cached waits while the registry is unreachable, and is decoded when it
// comes up; nothing fails in between.
func TestDecodeWaitsForARegistryThatIsDown(t *testing.T) {
	up := srfake.New()
	defer up.Close()
	encoder := newTestEncoder(t, "price.avsc", up.URL())
	framed, err := process(t, encoder, []byte(`{"coinId":"b","symbol":"B","exchangeId":"x","usdPrice":"3","lastUpdated":1,"source":"s","attribution":"a"}`)).AsBytes()
	require.NoError(t, err)

	// The decoder's registry: up's handler, served later at a port that is
	// closed for now.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	decoder := newTestDecoder(t, registry.EncodingAvro, "http://"+addr)

	done := make(chan *service.Message, 1)
	go func() {
		out, err := decoder.Process(context.Background(), service.NewMessage(framed))
		if err == nil {
			done <- out[0]
		}
		close(done)
	}()
	select {
	case m := <-done:
		t.Fatalf("the message finished while the registry was down: %v", m)
	case <-time.After(time.Second):
	}
	start := time.Now()
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	srv := &http.Server{Handler: up.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	select {
	case m, ok := <-done:
		require.True(t, ok, "Process returned an error")
		require.NoError(t, m.GetError())
		t.Logf("decoded %v after the registry came up", time.Since(start))
	case <-time.After(30 * time.Second):
		t.Fatal("not decoded 30s after the registry came up")
	}
}
