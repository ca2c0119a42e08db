package schemaregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/history"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/registry"
	"github.com/qicore/qiflow/internal/result"
)

// Field names of schema_registry_decode.
const (
	decFieldFormat   = "format"
	decFieldEncoding = "encoding"
	decFieldRetry    = "retry_interval"
)

// errDraining ends a registry wait when the stream drains.
var errDraining = errors.New("the stream is stopping")

// MetaSchemaID is the metadata key of a decoded message's writer schema id.
const MetaSchemaID = "schema_id"

// timeLayout renders a timestamp with as many fractional digits as it has,
// up to microseconds, as the wire format reads them.
const timeLayout = "2006-01-02T15:04:05.999999Z07:00"

func decodeSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Version("4.1.0").
		Categories("Parsing").
		Summary("Decodes Confluent-framed Avro, Protobuf or JSON Schema messages into qiflow's JSON wire format, with the writer schema looked up by id in a schema registry.").
		Description("Each message's writer schema is looked up by its id and cached; the message is then decoded exactly as the `timescale` output decodes it (decimals never through a float, the wire format's rules and codes) and replaced by its wire-format JSON: camelCase keys, decimals as strings of their exact digits, timestamps as RFC 3339, absent optionals left out. Its schema id is set as `@"+MetaSchemaID+"`. A message that cannot be decoded (not framed, unknown id, corrupt payload, a rule broken) fails with its reason and carries the dead-letter headers, so that a `switch` output can route it as the exchange router's rejects are routed. An unreachable registry is retried every `"+decFieldRetry+"` until it answers or the stream stops: no message fails because the registry blinked. See docs/formats.md.").
		Fields(append([]*service.ConfigField{
			service.NewStringEnumField(decFieldFormat, slices.Sorted(maps.Keys(marketdata.Kinds))...).
				Description("The wire-format message type of the messages."),
			service.NewStringEnumField(decFieldEncoding, registry.Encodings...).
				Description("How the messages are encoded."),
			service.NewDurationField(decFieldRetry).
				Description("How long to wait before asking an unreachable registry again.").
				Default("1s").
				Advanced(),
		}, registry.ConfigFields()...)...).
		Example("Avro prices into JSON", "Read Avro prices from one topic and produce them as the JSON wire format to another.", `
input:
  redpanda:
    topics: [ crypto-prices-avro ]
    consumer_group: avro-to-json
pipeline:
  processors:
    - schema_registry_decode:
        format: price
        encoding: avro
output:
  redpanda:
    topic: crypto-prices
`)
}

func init() {
	service.MustRegisterProcessor("schema_registry_decode", decodeSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.Processor, error) {
			return newDecoderFromConfig(conf, mgr)
		})
}

// decoder is the schema_registry_decode processor.
type decoder struct {
	kind  *marketdata.Kind
	dec   *registry.Decoder
	retry time.Duration
	scope *result.Scope
	log   *service.Logger
	// keys are the wire-format keys of the kind's columns, quoted.
	keys []string
}

func newDecoderFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*decoder, error) {
	format, err := conf.FieldString(decFieldFormat)
	if err != nil {
		return nil, err
	}
	encoding, err := conf.FieldString(decFieldEncoding)
	if err != nil {
		return nil, err
	}
	d := &decoder{kind: marketdata.Kinds[format], scope: result.ScopeOf(mgr), log: mgr.Logger()}
	if d.retry, err = conf.FieldDuration(decFieldRetry); err != nil {
		return nil, err
	}
	rc, err := registry.ParseConfig(conf)
	if err != nil {
		return nil, err
	}
	if d.dec, err = registry.NewDecoder(rc, encoding, d.kind); err != nil {
		return nil, err
	}
	for _, col := range d.kind.Columns {
		d.keys = append(d.keys, strconv.Quote(history.WireKey(col)))
	}
	return d, nil
}

// Process decodes one message into the wire format.
func (d *decoder) Process(ctx context.Context, msg *service.Message) (service.MessageBatch, error) {
	data, err := msg.AsBytes()
	if err != nil {
		return nil, err
	}
	err = d.dec.Load(ctx, [][]byte{data}, func(ctx context.Context, attempt int, err error) error {
		d.log.Warnf("Retrying the schema registry in %v (attempt %d): %v", d.retry, attempt, err)
		return d.scope.Sleep(ctx, d.retry, errDraining)
	})
	if err != nil && result.Classify(err).Category != result.Business {
		// Not the message's fault: the stream drains, or the registry
		// refused the credentials, which stops the stream.
		if result.Classify(err).Category == result.Security {
			d.scope.Halt(err)
		}
		return nil, err
	}
	row := make([]datum.Datum, len(d.kind.Columns))
	if err == nil {
		err = d.dec.DecodeInto(data, row)
	}
	if err != nil {
		msg.SetError(err)
		result.MarkDeadLetter(msg, err)
		return service.MessageBatch{msg}, nil
	}
	out, err := d.appendJSON(make([]byte, 0, len(data)*2), row)
	if err != nil {
		return nil, err
	}
	id, _, _ := registry.SplitFrame(data)
	msg.SetBytes(out)
	msg.MetaSetMut(MetaSchemaID, strconv.Itoa(id))
	return service.MessageBatch{msg}, nil
}

// appendJSON renders a row as a wire-format message.
func (d *decoder) appendJSON(b []byte, row []datum.Datum) ([]byte, error) {
	b = append(b, '{')
	first := true
	for i, v := range row {
		if v.Kind == datum.Null {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(append(b, d.keys[i]...), ':')
		switch v.Kind {
		case datum.Text:
			s, err := json.Marshal(v.String())
			if err != nil {
				return nil, err
			}
			b = append(b, s...)
		case datum.Decimal:
			b = strconv.AppendQuote(b, v.Dec.String())
		case datum.Time:
			b = strconv.AppendQuote(b, v.Time.UTC().Format(timeLayout))
		case datum.Int:
			b = strconv.AppendInt(b, v.Int, 10)
		default:
			return nil, fmt.Errorf("column %s: a %v value has no wire form", d.kind.Columns[i], v.Kind)
		}
	}
	return append(b, '}'), nil
}

// Close does nothing.
func (d *decoder) Close(context.Context) error { return nil }
