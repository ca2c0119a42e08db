package timescale_output

import (
	"context"
	"fmt"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// Field names of the Confluent-framed encodings (docs/formats.md).
const (
	fieldEncoding       = "encoding"
	fieldSchemaRegistry = "schema_registry"
)

// encodingJSON is the default encoding: qiflow's JSON wire format, unframed.
const encodingJSON = "json"

// formatFields are the fields that choose how format's messages are
// encoded.
func formatFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringEnumField(fieldEncoding, append([]string{encodingJSON}, registry.Encodings...)...).
			Description("How the messages of `format` are encoded: `json` is qiflow's JSON wire format; `avro`, `protobuf` and `json_schema` are Confluent-framed payloads (magic byte, 4-byte schema id, and for Protobuf the message indexes) whose writer schema is looked up by id in `schema_registry` and cached. Every encoding gives the same rows, validated by the same rules, and a payload that cannot be decoded is dead-lettered with a reason. See docs/formats.md.").
			Default(encodingJSON).
			Version("4.1.0"),
		service.NewObjectField(fieldSchemaRegistry, registry.ConfigFields()...).
			Description("The schema registry of the `avro`, `protobuf` and `json_schema` encodings. An unreachable registry is retried (the messages wait, they are not dead-lettered); an id the registry does not know dead-letters its messages; rejected credentials stop the pipeline.").
			Optional().
			Advanced().
			Version("4.1.0"),
	}
}

// parseFramed returns the decoder of a Confluent-framed encoding, or nil
// for the JSON wire format.
func parseFramed(conf *service.ParsedConfig, kind *marketdata.Kind) (*registry.Decoder, error) {
	encoding, err := conf.FieldString(fieldEncoding)
	if err != nil || encoding == encodingJSON {
		return nil, err
	}
	if kind == nil {
		return nil, fmt.Errorf("%s %s needs a format", fieldEncoding, encoding)
	}
	rc, err := parseRegistry(conf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fieldSchemaRegistry, err)
	}
	return registry.NewDecoder(rc, encoding, kind)
}

// parseRegistry reads schema_registry, with the profile's schema_registry
// (and so SCHEMA_REGISTRY_*) as defaults.
func parseRegistry(conf *service.ParsedConfig) (registry.Config, error) {
	if !conf.Contains(fieldSchemaRegistry) {
		return registry.ParseConfig(nil)
	}
	return registry.ParseConfig(conf.Namespace(fieldSchemaRegistry))
}

// loadSchemas caches the writer schemas of a batch of framed messages
// before it is decoded. An unreachable registry is retried with the
// output's backoff until it answers or the stream stops; then the batch
// fails as a whole and is replayed, so no message is dead-lettered because
// the registry blinked.
func (o *output) loadSchemas(ctx context.Context, batch service.MessageBatch) error {
	if o.conf.framed == nil {
		return nil
	}
	msgs := make([][]byte, 0, len(batch))
	for _, m := range batch {
		if b, err := m.AsBytes(); err == nil {
			msgs = append(msgs, b)
		}
	}
	err := o.conf.framed.Load(ctx, msgs, func(ctx context.Context, attempt int, err error) error {
		wait := backoff(attempt, o.conf.retryInitial, o.conf.retryMax)
		o.metrics.retries.Incr(1)
		o.log.Warnf("Retrying the schema registry in %v: %v", wait, err)
		return o.scope.Sleep(ctx, wait, errDraining)
	})
	if classified := result.Classify(err); err != nil && classified.Action() == result.Stop {
		o.stop(classified)
	}
	return err
}
