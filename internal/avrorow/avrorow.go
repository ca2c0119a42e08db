// Package avrorow reads Avro records into the wire fields of a market-data
// message kind, exactly: decimals (bytes or fixed) become decimal.Decimal
// from their unscaled integer and the writer's scale, never a float;
// timestamp-millis and timestamp-micros become points in time; a field in a
// union with null is NULL when null.
//
// Each message is decoded with its writer schema (twmb/avro), and fields
// are matched to the wire format by name, or by a writer field's alias, as
// Avro's resolution matches a reader's fields: writer fields the wire
// format does not know are skipped, and wire fields the writer lacks are
// absent (NULL, or missing_field when required). The values then pass the
// wire format's rules in internal/marketdata, so that a bad Avro price is
// refused with the code and reason of the same bad JSON price, and a
// decimal of a wider scale than its column is refused by the column check,
// not rounded.
package avrorow

import (
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/twmb/avro"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/result"
)

// CodeInvalidPayload is the code of an Avro payload that does not decode by
// its writer schema; it equals registry.CodeInvalidPayload.
const CodeInvalidPayload = "invalid_payload"

// rawDecimals makes twmb/avro hand over a decimal's unscaled bytes, which
// Reader converts with the writer's scale, rather than a *big.Rat.
var rawDecimals = []avro.SchemaOpt{
	avro.CustomType{LogicalType: "decimal", AvroType: "bytes"},
	avro.CustomType{LogicalType: "decimal", AvroType: "fixed"},
}

// Reader decodes payloads of one writer schema into a kind's wire fields.
// It is safe for concurrent use.
type Reader struct {
	schema *avro.Schema
	kind   *marketdata.Kind
	// plan says, for each of the kind's wire fields, which writer field
	// holds it and how its value converts; name is "" when the writer has
	// no such field.
	plan []fieldPlan
}

type fieldPlan struct {
	name string
	// scale is the writer's decimal scale, when the field is a decimal.
	decimal bool
	scale   int32
}

// Compile parses a writer schema (Avro JSON) for reading as kind. The
// schema must be a record.
func Compile(text string, kind *marketdata.Kind) (*Reader, error) {
	s, err := avro.Parse(text, rawDecimals...)
	if err != nil {
		return nil, fmt.Errorf("parse Avro schema: %w", err)
	}
	root := s.Root()
	if root.Type != "record" {
		return nil, fmt.Errorf("Avro schema is a %s, want a record of the %s wire format", root.Type, kind.Name)
	}
	r := &Reader{schema: s, kind: kind, plan: make([]fieldPlan, len(kind.Fields()))}
	for i, name := range kind.Fields() {
		for _, f := range root.Fields {
			if f.Name != name && !slices.Contains(f.Aliases, name) {
				continue
			}
			t := nonNull(f.Type)
			r.plan[i] = fieldPlan{name: f.Name, decimal: t.LogicalType == "decimal", scale: int32(t.Scale)}
			break
		}
	}
	return r, nil
}

// nonNull is the branch of a union with null that is not null, or t.
func nonNull(t avro.SchemaNode) avro.SchemaNode {
	if t.Type != "union" {
		return t
	}
	for _, b := range t.Branches {
		if b.Type != "null" {
			return b
		}
	}
	return t
}

// DecodeRow decodes one payload into a row of the kind, validated as
// marketdata.Kind.DecodeFields validates.
func (r *Reader) DecodeRow(payload []byte, row []datum.Datum) error {
	var values [maxFields]datum.Datum
	if err := r.Read(payload, values[:len(r.plan)]); err != nil {
		return err
	}
	return r.kind.DecodeFields(values[:len(r.plan)], row)
}

// maxFields is the most wire fields a kind has.
const maxFields = 16

// Read decodes one payload (the bytes after the Confluent header) into
// values, in the kind's Fields order. Text values alias payload.
func (r *Reader) Read(payload []byte, values []datum.Datum) error {
	var record map[string]any
	rest, err := r.schema.Decode(payload, &record, avro.AliasInput())
	if err != nil {
		return result.Wrap(result.Business, CodeInvalidPayload, err, "Avro payload does not decode by its writer schema")
	}
	if len(rest) != 0 {
		return result.New(result.Business, CodeInvalidPayload, fmt.Sprintf("Avro payload has %d bytes after its record", len(rest)))
	}
	for i, p := range r.plan {
		values[i] = datum.Datum{}
		if p.name == "" {
			continue
		}
		v, err := convert(record[p.name], p)
		if err != nil {
			return result.Wrap(result.Business, marketdata.CodeInvalidField, err, r.kind.Fields()[i])
		}
		values[i] = v
	}
	return nil
}

// convert turns one decoded Avro value into a datum.
func convert(v any, p fieldPlan) (datum.Datum, error) {
	switch v := v.(type) {
	case nil:
		return datum.Datum{}, nil
	case string:
		return datum.OfString(v), nil
	case []byte:
		if p.decimal {
			return datum.OfDecimal(unscaled(v, p.scale)), nil
		}
		return datum.OfText(v), nil
	case int32:
		return datum.OfInt(int64(v)), nil
	case int64:
		return datum.OfInt(v), nil
	case time.Time:
		return datum.OfTime(v), nil
	case float32:
		return datum.OfFloat(float64(v)), nil
	case float64:
		return datum.OfFloat(v), nil
	case bool:
		return datum.OfBool(v), nil
	}
	return datum.Datum{}, errors.New("an Avro value of a type the wire format does not have")
}

// unscaled is the decimal of an Avro decimal's big-endian two's-complement
// unscaled integer and scale.
func unscaled(b []byte, scale int32) decimal.Decimal {
	if len(b) <= 8 {
		var v int64
		if len(b) > 0 && b[0]&0x80 != 0 {
			v = -1
		}
		for _, c := range b {
			v = v<<8 | int64(c)
		}
		return decimal.New(v, -scale)
	}
	n := new(big.Int).SetBytes(b)
	if b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b))*8))
	}
	return decimal.FromNumeric(pgtype.Numeric{Int: n, Exp: -scale, Valid: true})
}
