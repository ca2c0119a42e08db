package registry

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/qicore/qiflow/internal/avrorow"
	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/jsonschemarow"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/protorow"
	"github.com/qicore/qiflow/internal/result"
)

// The encodings of Confluent-framed payloads.
const (
	EncodingAvro       = "avro"
	EncodingProtobuf   = "protobuf"
	EncodingJSONSchema = "json_schema"
)

// Encodings are the encodings a Decoder reads.
var Encodings = []string{EncodingAvro, EncodingProtobuf, EncodingJSONSchema}

// Decoder turns Confluent-framed messages of one encoding into rows of a
// message kind, through the same row path and rules as the JSON wire
// format.
type Decoder struct {
	kind     *marketdata.Kind
	encoding string
	registry *Registry
}

// NewDecoder returns a decoder of kind's messages in encoding, with
// schemas from the registry conf names.
func NewDecoder(conf Config, encoding string, kind *marketdata.Kind) (*Decoder, error) {
	d := &Decoder{kind: kind, encoding: encoding}
	var err error
	if d.registry, err = New(conf, d.compile); err != nil {
		return nil, err
	}
	return d, nil
}

// Registry is the decoder's registry client.
func (d *Decoder) Registry() *Registry { return d.registry }

// Load makes sure the schemas of every framed message in msgs are cached,
// retrying an unreachable registry as Registry.Load does. Messages that are
// not framed are left for DecodeInto to refuse.
func (d *Decoder) Load(ctx context.Context, msgs [][]byte, wait func(ctx context.Context, attempt int, err error) error) error {
	var ids []int
	for _, m := range msgs {
		if id, _, err := SplitFrame(m); err == nil {
			if _, _, ok := d.registry.Reader(id); !ok {
				ids = append(ids, id)
			}
		}
	}
	return d.registry.Load(ctx, ids, wait)
}

// DecodeInto decodes one framed message into row, in the kind's Columns
// order. Its schema must have been loaded; an id that was not is a
// TRANSIENT error, so the message is retried rather than dead-lettered.
func (d *Decoder) DecodeInto(data []byte, row []datum.Datum) error {
	id, payload, err := SplitFrame(data)
	if err != nil {
		return err
	}
	reader, err, ok := d.registry.Reader(id)
	if !ok {
		return result.New(result.External, "schema_not_loaded", fmt.Sprintf("schema id %d is not loaded yet", id)).AsTransient()
	}
	if err != nil {
		return err
	}
	return reader.DecodeRow(payload, row)
}

// compile makes a Reader of a registry schema, for the decoder's encoding.
func (d *Decoder) compile(ctx context.Context, cl *sr.Client, s sr.Schema) (Reader, error) {
	want := map[string]sr.SchemaType{EncodingAvro: sr.TypeAvro, EncodingProtobuf: sr.TypeProtobuf, EncodingJSONSchema: sr.TypeJSON}[d.encoding]
	if s.Type != want {
		return nil, fmt.Errorf("is a %s schema, and this pipeline reads %s", s.Type, want)
	}
	switch d.encoding {
	case EncodingAvro:
		return avrorow.Compile(s.Schema, d.kind)
	case EncodingProtobuf:
		imports, err := references(ctx, cl, s.References, map[string]bool{})
		if err != nil {
			return nil, err
		}
		r, err := protorow.Compile(ctx, protorow.Source{Name: "schema.proto", Text: s.Schema}, imports, d.kind)
		if err != nil {
			return nil, err
		}
		return protoReader{r}, nil
	case EncodingJSONSchema:
		imports, err := references(ctx, cl, s.References, map[string]bool{})
		if err != nil {
			return nil, err
		}
		refs := make([]jsonschemarow.Source, len(imports))
		for i, src := range imports {
			refs[i] = jsonschemarow.Source{Name: src.Name, Text: src.Text}
		}
		return jsonschemarow.Compile(s.Schema, refs, d.kind)
	}
	return nil, fmt.Errorf("encoding %s is not supported", d.encoding)
}

// references fetches the schemas a Protobuf or JSON Schema schema
// references, and theirs, as the documents of the names they are
// referenced by.
func references(ctx context.Context, cl *sr.Client, refs []sr.SchemaReference, seen map[string]bool) ([]protorow.Source, error) {
	var sources []protorow.Source
	for _, ref := range refs {
		if seen[ref.Name] {
			continue
		}
		seen[ref.Name] = true
		s, err := cl.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			return nil, lookupError(ctx, err, fmt.Sprintf("reference %s (subject %s version %d)", ref.Name, ref.Subject, ref.Version))
		}
		sources = append(sources, protorow.Source{Name: ref.Name, Text: s.Schema.Schema})
		deeper, err := references(ctx, cl, s.References, seen)
		if err != nil {
			return nil, err
		}
		sources = append(sources, deeper...)
	}
	return sources, nil
}

// protoReader reads the Confluent message indexes before a Protobuf
// message.
type protoReader struct{ r *protorow.Reader }

func (p protoReader) DecodeRow(payload []byte, row []datum.Datum) error {
	var buf [4]int
	indexes, msg, err := SplitIndexes(payload, buf[:])
	if err != nil {
		return err
	}
	return p.r.DecodeRow(indexes, msg, row)
}
