// Package schemaregistry provides the schema_registry_encode processor: it
// turns messages of qiflow's JSON wire format into Confluent-framed Avro
// or JSON Schema payloads, with a schema registered in a schema registry,
// so that a feed can produce what prices_avro.yaml reads
// (docs/formats.md).
package schemaregistry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/jsonschemarow"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// Field names of schema_registry_encode.
const (
	encFieldFormat     = "format"
	encFieldSchemaFile = "schema_file"
	encFieldSubject    = "subject"
)

func encodeSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Version("4.1.0").
		Categories("Parsing").
		Summary("Encodes messages of qiflow's JSON wire format as Confluent-framed Avro or JSON Schema payloads, with the schema registered under a subject of a schema registry.").
		Description("On the first message the schema in `schema_file` is registered under `subject` (an existing identical schema keeps its id): an Avro schema for a `.avsc` file, a JSON Schema for a `.json` file. Each message is then checked against the wire format and the schema, encoded (Avro: decimals exactly, from their JSON digits; JSON Schema: the message's own bytes) and framed with the magic byte and the schema id. A message that is not a valid wire-format message of `format`, or does not fit the schema, fails with its reason; an unreachable registry fails the message as a transient error, for the output to retry. See docs/formats.md.").
		Fields(append([]*service.ConfigField{
			service.NewStringEnumField(encFieldFormat, slices.Sorted(maps.Keys(marketdata.Kinds))...).
				Description("The wire-format message type of the messages."),
			service.NewStringField(encFieldSchemaFile).
				Description("The schema to encode with and register: Avro (`.avsc`) or JSON Schema (`.json`, such as `pipelines/schemas/price.schema.json`).").
				Example("pipelines/schemas/price.avsc"),
			service.NewStringField(encFieldSubject).
				Description("The subject to register the schema under; with the topic-name strategy `<topic>-value`.").
				Example("crypto-prices-avro-value"),
		}, registry.ConfigFields()...)...).
		Example("Avro prices", "Produce the demo's prices in Avro.", `
pipeline:
  processors:
    - schema_registry_encode:
        format: price
        schema_file: pipelines/schemas/price.avsc
        subject: crypto-prices-avro-value
`)
}

func init() {
	service.MustRegisterProcessor("schema_registry_encode", encodeSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.Processor, error) {
			return newEncoderFromConfig(conf)
		})
}

// encoder is the schema_registry_encode processor.
type encoder struct {
	kind *marketdata.Kind
	// Exactly one of schema (Avro) and jsonSchema is set, as typ says.
	schema     *avro.Schema
	jsonSchema *jsonschemarow.Reader
	typ        sr.SchemaType
	text       string
	subject    string
	client     *sr.Client

	// mu guards id, which is 0 until the schema is registered.
	mu sync.Mutex
	id int
}

func newEncoderFromConfig(conf *service.ParsedConfig) (*encoder, error) {
	format, err := conf.FieldString(encFieldFormat)
	if err != nil {
		return nil, err
	}
	e := &encoder{kind: marketdata.Kinds[format]}
	path, err := conf.FieldString(encFieldSchemaFile)
	if err != nil {
		return nil, err
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", encFieldSchemaFile, err)
	}
	e.text = string(text)
	switch filepath.Ext(path) {
	case ".avsc":
		e.typ = sr.TypeAvro
		e.schema, err = avro.Parse(e.text)
	case ".json":
		e.typ = sr.TypeJSON
		e.jsonSchema, err = jsonschemarow.Compile(e.text, nil, e.kind)
	default:
		err = errors.New("want an Avro schema (.avsc) or a JSON Schema (.json)")
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", encFieldSchemaFile, path, err)
	}
	if e.subject, err = conf.FieldString(encFieldSubject); err != nil {
		return nil, err
	}
	rc, err := registry.ParseConfig(conf)
	if err != nil {
		return nil, err
	}
	reg, err := registry.New(rc, nil)
	if err != nil {
		return nil, err
	}
	e.client = reg.Client()
	return e, nil
}

// schemaID registers the schema on first use and returns its id.
func (e *encoder) schemaID(ctx context.Context) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.id != 0 {
		return e.id, nil
	}
	s, err := e.client.CreateSchema(ctx, e.subject, sr.Schema{Schema: e.text, Type: e.typ})
	if err != nil {
		return 0, result.Wrap(result.External, "schema_registry_unavailable", err, "register the schema under "+e.subject).AsTransient()
	}
	e.id = s.ID
	return e.id, nil
}

// Process encodes one message.
func (e *encoder) Process(ctx context.Context, msg *service.Message) (service.MessageBatch, error) {
	data, err := msg.AsBytes()
	if err != nil {
		return nil, err
	}
	encoded, err := e.encode(ctx, data)
	if err != nil {
		return nil, err
	}
	msg.SetBytes(encoded)
	return service.MessageBatch{msg}, nil
}

// encode validates a wire-format message and encodes it, framed.
func (e *encoder) encode(ctx context.Context, data []byte) ([]byte, error) {
	if e.jsonSchema != nil {
		return e.encodeJSON(ctx, data)
	}
	if _, err := e.kind.Decode(data); err != nil {
		return nil, err
	}
	var record map[string]any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&record); err != nil {
		return nil, result.Wrap(result.Business, marketdata.CodeInvalidJSON, err, "message")
	}
	for _, f := range e.kind.Fields() {
		if _, ok := record[f]; !ok {
			record[f] = nil
		}
	}
	id, err := e.schemaID(ctx)
	if err != nil {
		return nil, err
	}
	out, err := e.schema.AppendEncode(registry.AppendFrame(nil, id), record)
	if err != nil {
		return nil, result.Wrap(result.Business, "avro_encode_failed", err, "encode with "+e.subject)
	}
	return out, nil
}

// encodeJSON validates a wire-format message against the JSON Schema and
// frames its bytes: a JSON Schema payload is the document itself.
func (e *encoder) encodeJSON(ctx context.Context, data []byte) ([]byte, error) {
	row := make([]datum.Datum, len(e.kind.Columns))
	if err := e.jsonSchema.DecodeRow(data, row); err != nil {
		return nil, err
	}
	id, err := e.schemaID(ctx)
	if err != nil {
		return nil, err
	}
	return append(registry.AppendFrame(make([]byte, 0, 5+len(data)), id), data...), nil
}

// Close does nothing.
func (e *encoder) Close(context.Context) error { return nil }
