// Package protorow reads Protobuf messages into the wire fields of a
// market-data message kind, exactly, straight from the wire bytes.
//
// A writer schema (.proto text from the registry, with its references and
// the well-known types) is compiled with protocompile once; each message
// of it gets a plan that maps the kind's wire fields to field numbers, by
// the field's JSON name (coin_id is coinId) or its own name. Payloads are
// then read with protowire, field by field, without building a dynamic
// message: strings alias the payload, so the hot path allocates nothing.
//
// Decimal encodings read exactly (docs/formats.md):
//   - a string field holding a decimal ("67234.12345678"), the shipped
//     .proto files' encoding;
//   - a message whose field 1 is a string holding one, such as
//     google.type.Decimal (`string value = 1`);
//   - whole numbers (int32, int64, sint*, uint*, fixed*) for any numeric
//     column.
//
// A double or float in a numeric column is refused, as in Avro: its binary
// value is not the decimal its producer meant. Timestamps are
// google.protobuf.Timestamp, integer epoch milliseconds, or RFC 3339
// strings. A field absent from the payload is absent (NULL, or
// missing_field when required); proto3 does not write an empty string, so
// an empty required string is missing rather than blank.
package protorow

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/bufbuild/protocompile"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/result"
)

// CodeInvalidPayload is the code of a Protobuf payload that does not decode
// by its writer schema; it equals registry.CodeInvalidPayload.
const CodeInvalidPayload = "invalid_payload"

// CodeInvalidFrame is the code of message indexes that name no message of
// the writer schema; it equals registry.CodeInvalidFrame.
const CodeInvalidFrame = "invalid_frame"

// Reader decodes the messages of one writer schema (a .proto file) into a
// kind's wire fields. It is safe for concurrent use: after Compile it is
// only read.
type Reader struct {
	kind *marketdata.Kind
	file protoreflect.FileDescriptor
	// top holds the plan of each top-level message, by index; nested holds
	// the plans of nested messages by their index path, built at compile.
	top    []*plan
	nested map[string]*plan
}

// plan says how a message's fields become the kind's wire fields.
type plan struct {
	name string
	// byNumber maps a field number to its wire field's index and reading;
	// numbers the kind does not know are skipped.
	byNumber map[protowire.Number]fieldPlan
	// dense is byNumber for numbers below len(dense), the common case.
	dense []fieldPlan
}

type fieldPlan struct {
	// slot is the wire field's index in the kind's Fields, plus one; zero
	// marks a number the kind does not read.
	slot int
	read reading
}

// reading is how a field's wire value becomes a datum.
type reading uint8

const (
	readString reading = iota + 1
	readSigned
	readZigzag
	readUnsigned
	readFixed32
	readSFixed32
	readFixed64
	readSFixed64
	readDouble
	readFloat
	readBool
	readTimestamp      // google.protobuf.Timestamp
	readDecimalMessage // a message whose field 1 is a decimal string
)

// Source is a .proto file's name and text, as a registry schema or one of
// its references.
type Source struct {
	Name, Text string
}

// Compile compiles a writer schema, the file main, with the files it
// imports (the registry's references; the well-known types are built in),
// for reading as kind.
func Compile(ctx context.Context, main Source, imports []Source, kind *marketdata.Kind) (*Reader, error) {
	files := map[string]string{main.Name: main.Text}
	for _, s := range imports {
		files[s.Name] = s.Text
	}
	compiler := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(files),
		}),
	}
	compiled, err := compiler.Compile(ctx, main.Name)
	if err != nil {
		return nil, fmt.Errorf("compile Protobuf schema: %w", err)
	}
	r := &Reader{kind: kind, file: compiled[0], nested: map[string]*plan{}}
	msgs := r.file.Messages()
	if msgs.Len() == 0 {
		return nil, fmt.Errorf("Protobuf schema has no message, want one of the %s wire format", kind.Name)
	}
	for i := range msgs.Len() {
		r.top = append(r.top, r.planOf(msgs.Get(i)))
		r.planNested(msgs.Get(i), []int{i})
	}
	return r, nil
}

func (r *Reader) planNested(md protoreflect.MessageDescriptor, path []int) {
	for i := range md.Messages().Len() {
		p := append(slices.Clone(path), i)
		r.nested[pathKey(p)] = r.planOf(md.Messages().Get(i))
		r.planNested(md.Messages().Get(i), p)
	}
}

func pathKey(path []int) string { return fmt.Sprint(path) }

// planOf maps md's fields to the kind's wire fields by JSON name or name.
func (r *Reader) planOf(md protoreflect.MessageDescriptor) *plan {
	p := &plan{name: string(md.FullName()), byNumber: map[protowire.Number]fieldPlan{}}
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		slot := slices.Index(r.kind.Fields(), f.JSONName())
		if slot < 0 {
			slot = slices.Index(r.kind.Fields(), string(f.Name()))
		}
		read := readingOf(f)
		if slot < 0 || read == 0 || f.IsList() || f.IsMap() {
			continue
		}
		p.byNumber[f.Number()] = fieldPlan{slot: slot + 1, read: read}
	}
	for n, fp := range p.byNumber {
		if n < 64 {
			if int(n) >= len(p.dense) {
				p.dense = append(p.dense, make([]fieldPlan, int(n)+1-len(p.dense))...)
			}
			p.dense[n] = fp
		}
	}
	return p
}

// readingOf is how f's values are read, or zero for a type the wire format
// has no use for (they are then skipped, and the wire field is absent).
func readingOf(f protoreflect.FieldDescriptor) reading {
	switch f.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind:
		return readString
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.EnumKind:
		return readSigned
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return readZigzag
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return readUnsigned
	case protoreflect.Fixed32Kind:
		return readFixed32
	case protoreflect.Sfixed32Kind:
		return readSFixed32
	case protoreflect.Fixed64Kind:
		return readFixed64
	case protoreflect.Sfixed64Kind:
		return readSFixed64
	case protoreflect.DoubleKind:
		return readDouble
	case protoreflect.FloatKind:
		return readFloat
	case protoreflect.BoolKind:
		return readBool
	case protoreflect.MessageKind:
		m := f.Message()
		if m.FullName() == "google.protobuf.Timestamp" {
			return readTimestamp
		}
		if v := m.Fields().ByNumber(1); v != nil && v.Kind() == protoreflect.StringKind && m.Fields().Len() == 1 {
			return readDecimalMessage
		}
	}
	return 0
}

// DecodeRow decodes the message that indexes name (the Confluent message
// indexes) from payload into a row of the kind, validated as
// marketdata.Kind.DecodeFields validates.
func (r *Reader) DecodeRow(indexes []int, payload []byte, row []datum.Datum) error {
	var values [maxFields]datum.Datum
	n := len(r.kind.Fields())
	if err := r.Read(indexes, payload, values[:n]); err != nil {
		return err
	}
	return r.kind.DecodeFields(values[:n], row)
}

// maxFields is the most wire fields a kind has.
const maxFields = 16

// Read decodes the message indexes name from payload into values, in the
// kind's Fields order. Text values alias payload.
func (r *Reader) Read(indexes []int, payload []byte, values []datum.Datum) error {
	p, err := r.planAt(indexes)
	if err != nil {
		return err
	}
	clear(values)
	for len(payload) > 0 {
		num, typ, n := protowire.ConsumeTag(payload)
		if n < 0 {
			return invalidPayload(p, protowire.ParseError(n))
		}
		payload = payload[n:]
		var fp fieldPlan
		if int(num) < len(p.dense) {
			fp = p.dense[num]
		} else if len(p.byNumber) > len(p.dense) {
			fp = p.byNumber[num]
		}
		if fp.slot == 0 {
			n = protowire.ConsumeFieldValue(num, typ, payload)
			if n < 0 {
				return invalidPayload(p, protowire.ParseError(n))
			}
			payload = payload[n:]
			continue
		}
		v, n, err := read(fp.read, typ, payload)
		if err != nil {
			return result.Wrap(result.Business, marketdata.CodeInvalidField, err, r.kind.Fields()[fp.slot-1])
		}
		if n < 0 {
			return invalidPayload(p, protowire.ParseError(n))
		}
		payload = payload[n:]
		values[fp.slot-1] = v // the last occurrence wins, as for any Protobuf scalar
	}
	return nil
}

func (r *Reader) planAt(indexes []int) (*plan, error) {
	if len(indexes) == 1 && indexes[0] >= 0 && indexes[0] < len(r.top) {
		return r.top[indexes[0]], nil
	}
	if len(indexes) > 1 {
		if p, ok := r.nested[pathKey(indexes)]; ok {
			return p, nil
		}
	}
	return nil, result.New(result.Business, CodeInvalidFrame, fmt.Sprintf("message indexes %v name no message of %s", indexes, r.file.Path()))
}

func invalidPayload(p *plan, err error) error {
	return result.Wrap(result.Business, CodeInvalidPayload, err, fmt.Sprintf("Protobuf payload does not decode as %s", p.name))
}

// read reads one field value of wire type typ as rd says, and returns it
// and the bytes it took (negative for a malformed value).
func read(rd reading, typ protowire.Type, b []byte) (datum.Datum, int, error) {
	want := wireType(rd)
	if typ != want {
		return datum.Datum{}, 0, fmt.Errorf("wire type %d, want %d", typ, want)
	}
	switch typ {
	case protowire.VarintType:
		v, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return datum.Datum{}, n, nil
		}
		switch rd {
		case readZigzag:
			return datum.OfInt(protowire.DecodeZigZag(v)), n, nil
		case readUnsigned:
			if v > math.MaxInt64 {
				return datum.Datum{}, 0, fmt.Errorf("%d does not fit a signed 64-bit integer", v)
			}
		case readBool:
			return datum.OfBool(v != 0), n, nil
		}
		return datum.OfInt(int64(v)), n, nil
	case protowire.Fixed32Type:
		v, n := protowire.ConsumeFixed32(b)
		switch {
		case n < 0:
			return datum.Datum{}, n, nil
		case rd == readFloat:
			return datum.OfFloat(float64(math.Float32frombits(v))), n, nil
		case rd == readSFixed32:
			return datum.OfInt(int64(int32(v))), n, nil
		}
		return datum.OfInt(int64(v)), n, nil
	case protowire.Fixed64Type:
		v, n := protowire.ConsumeFixed64(b)
		switch {
		case n < 0:
			return datum.Datum{}, n, nil
		case rd == readDouble:
			return datum.OfFloat(math.Float64frombits(v)), n, nil
		case rd == readFixed64 && v > math.MaxInt64:
			return datum.Datum{}, 0, fmt.Errorf("%d does not fit a signed 64-bit integer", v)
		}
		return datum.OfInt(int64(v)), n, nil
	}
	v, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return datum.Datum{}, n, nil
	}
	switch rd {
	case readTimestamp:
		t, err := timestamp(v)
		return datum.OfTime(t), n, err
	case readDecimalMessage:
		d, err := decimalMessage(v)
		return d, n, err
	}
	return datum.OfText(v), n, nil
}

func wireType(rd reading) protowire.Type {
	switch rd {
	case readSigned, readZigzag, readUnsigned, readBool:
		return protowire.VarintType
	case readFixed32, readSFixed32, readFloat:
		return protowire.Fixed32Type
	case readFixed64, readSFixed64, readDouble:
		return protowire.Fixed64Type
	}
	return protowire.BytesType
}

// timestamp reads a google.protobuf.Timestamp: seconds (1) and nanos (2).
func timestamp(b []byte) (time.Time, error) {
	var seconds, nanos int64
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return time.Time{}, protowire.ParseError(n)
		}
		b = b[n:]
		if typ == protowire.VarintType && (num == 1 || num == 2) {
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return time.Time{}, protowire.ParseError(n)
			}
			if num == 1 {
				seconds = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			b = b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return time.Time{}, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if nanos < 0 || nanos > 999_999_999 {
		return time.Time{}, fmt.Errorf("Timestamp nanos %d is out of range", nanos)
	}
	return time.Unix(seconds, nanos).UTC(), nil
}

// decimalMessage reads a message whose field 1 is a decimal string, such
// as google.type.Decimal; a message without it is absent.
func decimalMessage(b []byte) (datum.Datum, error) {
	var d datum.Datum
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return d, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return d, protowire.ParseError(n)
			}
			d = datum.OfText(v)
			b = b[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return d, protowire.ParseError(n)
		}
		b = b[n:]
	}
	return d, nil
}
