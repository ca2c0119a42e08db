package timescale_output

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/result"
)

// errValue is a BUSINESS error for a value that cannot be stored in col.
func errValue(col column, format string, args ...any) error {
	return result.New(result.Business, "invalid_value",
		fmt.Sprintf("column %s %s: %s", col.name, col.typeName, fmt.Sprintf(format, args...))).With("column", col.name)
}

// fromGo is the datum of a value a Bloblang mapping returned.
func fromGo(v any) datum.Datum {
	switch x := v.(type) {
	case nil:
		return datum.Datum{}
	case string:
		return datum.OfString(x)
	case time.Time:
		return datum.OfTime(x)
	case int64:
		return datum.OfInt(x)
	case float64:
		return datum.OfFloat(x)
	case bool:
		return datum.OfBool(x)
	case pgtype.Numeric:
		if x.Valid && !x.NaN && x.InfinityModifier == pgtype.Finite {
			return datum.OfDecimal(decimal.FromNumeric(x))
		}
	}
	return datum.OfAny(v)
}

// typeOf names a datum's Go type in errors, as a mapping author knows it.
func typeOf(d *datum.Datum) string { return fmt.Sprintf("%T", d.Go()) }

// cell converts *d into the datum col stores, in place, and checks that it
// fits: precision and scale, length, range, NOT NULL. What it leaves is what
// appendField encodes and appendKeyPart compares.
func cell(col column, d *datum.Datum) error {
	if d.Kind == datum.Null {
		if col.notNull {
			return errValue(col, "is required (NOT NULL)")
		}
		return nil
	}
	switch col.typeOID {
	case oidNumeric:
		n, err := toDecimal(d)
		if err != nil {
			return errValue(col, "%v", err)
		}
		precision, scale := 0, 0
		if col.typmod >= 4 {
			precision, scale = int((col.typmod-4)>>16), int((col.typmod-4)&0xffff)
		}
		if err := n.Fit(precision, scale); err != nil {
			return errValue(col, "%v", err)
		}
		if d.Kind != datum.Decimal {
			*d = datum.OfDecimal(n)
		}
		return nil
	case oidText, oidVarchar, oidBPChar:
		if d.Kind != datum.Text {
			return errValue(col, "want a string, got %s", typeOf(d))
		}
		if !utf8.Valid(d.Bytes) || bytes.IndexByte(d.Bytes, 0) >= 0 {
			return errValue(col, "not valid UTF-8 text")
		}
		if limit := int(col.typmod - 4); col.typmod >= 4 && len(d.Bytes) > limit {
			if n := utf8.RuneCount(d.Bytes); n > limit {
				return errValue(col, "%d characters, the column allows %d", n, limit)
			}
		}
		return nil
	case oidTimestamptz, oidTimestamp, oidDate:
		t, err := toTime(d)
		if err != nil {
			return errValue(col, "%v", err)
		}
		if d.Kind != datum.Time {
			*d = datum.OfTime(t)
		}
		return nil
	case oidInt2, oidInt4, oidInt8:
		i, err := toInt(d)
		if err != nil {
			return errValue(col, "%v", err)
		}
		limit := int64(math.MaxInt64)
		switch col.typeOID {
		case oidInt2:
			limit = math.MaxInt16
		case oidInt4:
			limit = math.MaxInt32
		}
		if i > limit || i < -limit-1 {
			return errValue(col, "%d is out of range", i)
		}
		*d = datum.OfInt(i)
		return nil
	case oidFloat4, oidFloat8:
		f, err := toFloat(d)
		if err != nil {
			return errValue(col, "%v", err)
		}
		*d = datum.OfFloat(f)
		return nil
	case oidBool:
		if d.Kind != datum.Bool {
			return errValue(col, "want a boolean, got %s", typeOf(d))
		}
		return nil
	case oidJSON, oidJSONB:
		b, err := json.Marshal(d.Go())
		if err != nil {
			return errValue(col, "%v", err)
		}
		*d = datum.OfText(b)
		return nil
	}
	// Another type (uuid, inet, interval, arrays…): pgx encodes the Go value.
	*d = datum.OfAny(d.Go())
	return nil
}

func toDecimal(d *datum.Datum) (decimal.Decimal, error) {
	switch d.Kind {
	case datum.Decimal:
		return d.Dec, nil
	case datum.Text:
		return decimal.ParseBytes(bytes.TrimSpace(d.Bytes))
	case datum.Int:
		return decimal.FromInt64(d.Int), nil
	case datum.Float:
		// A float only reaches here when a mapping computed one; its shortest
		// exact rendering is what the user computed.
		if math.IsNaN(d.Float) || math.IsInf(d.Float, 0) {
			return decimal.Decimal{}, fmt.Errorf("%v is not a finite number", d.Float)
		}
		return decimal.ParseString(strconv.FormatFloat(d.Float, 'f', -1, 64))
	case datum.Any:
		switch x := d.Any.(type) {
		case json.Number:
			return decimal.ParseString(string(x))
		case int32:
			return decimal.FromInt64(int64(x)), nil
		case int:
			return decimal.FromInt64(int64(x)), nil
		case uint64:
			return decimal.ParseString(fmt.Sprint(x))
		}
	}
	return decimal.Decimal{}, fmt.Errorf("want a decimal number or string, got %s", typeOf(d))
}

func toTime(d *datum.Datum) (time.Time, error) {
	switch d.Kind {
	case datum.Time:
		return d.Time, nil
	case datum.Text:
		s := string(bytes.TrimSpace(d.Bytes))
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp", d.Bytes)
		}
		return t, nil
	case datum.Int:
		return time.UnixMilli(d.Int).UTC(), nil
	case datum.Any:
		if n, ok := d.Any.(json.Number); ok {
			ms, err := toInt(ptr(datum.OfString(string(n))))
			if err != nil {
				return time.Time{}, fmt.Errorf("want RFC 3339 or epoch milliseconds: %w", err)
			}
			return time.UnixMilli(ms).UTC(), nil
		}
		if n, ok := d.Any.(int); ok {
			return time.UnixMilli(int64(n)).UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("want an RFC 3339 string or epoch milliseconds, got %s", typeOf(d))
}

func toInt(d *datum.Datum) (int64, error) {
	switch d.Kind {
	case datum.Int:
		return d.Int, nil
	case datum.Float:
		if d.Float != math.Trunc(d.Float) || math.Abs(d.Float) > 1<<53 {
			return 0, fmt.Errorf("%v is not a whole number", d.Float)
		}
		return int64(d.Float), nil
	case datum.Text, datum.Decimal:
		n, err := toDecimal(d)
		if err != nil {
			return 0, err
		}
		i, ok := n.Int64()
		if !ok {
			return 0, fmt.Errorf("%s is not a whole number in range", n)
		}
		return i, nil
	case datum.Any:
		switch x := d.Any.(type) {
		case json.Number:
			return toInt(ptr(datum.OfString(string(x))))
		case int32:
			return int64(x), nil
		case int:
			return int64(x), nil
		}
	}
	return 0, fmt.Errorf("want a whole number, got %s", typeOf(d))
}

func toFloat(d *datum.Datum) (float64, error) {
	switch d.Kind {
	case datum.Float:
		return d.Float, nil
	case datum.Int:
		return float64(d.Int), nil
	case datum.Any:
		if n, ok := d.Any.(json.Number); ok {
			return n.Float64()
		}
	}
	return 0, fmt.Errorf("want a number, got %s", typeOf(d))
}

// keyPart is one column of the conflict key: where its value sits in a row,
// and the column, whose type says which values PostgreSQL stores as one.
type keyPart struct {
	idx int
	col column
}

// appendKeyPart renders one key value, as cell left it, so that values the
// column stores as one render equally, and others differently. Times and
// whole numbers render as 8 bytes that sort as the numbers do, so that rows
// keyed by time first sort by their first 8 bytes (row.prefix). A datum is
// not yet what PostgreSQL stores:
//   - timestamptz keeps microseconds, and the encoding truncates the
//     nanoseconds;
//   - timestamp keeps the wall clock of the value's zone, not the instant;
//     date keeps the wall date;
//   - char(n) ignores trailing blanks;
//   - numeric ignores trailing zeros (1.0 = 1.00);
//   - float8 has -0 = 0, float4 keeps float32 precision, NaN = NaN;
//   - uuid ignores case, hyphens and braces.
func appendKeyPart(b []byte, col column, d *datum.Datum) []byte {
	switch d.Kind {
	case datum.Null:
		b = append(b, 1)
	case datum.Text:
		x := d.Bytes
		if col.typeOID == oidBPChar {
			x = bytes.TrimRight(x, " ")
		}
		b = append(b, x...)
	case datum.Time:
		x := d.Time
		switch col.typeOID {
		case oidTimestamp:
			x = time.Date(x.Year(), x.Month(), x.Day(), x.Hour(), x.Minute(), x.Second(), x.Nanosecond(), time.UTC)
		case oidDate:
			x = time.Date(x.Year(), x.Month(), x.Day(), 0, 0, 0, 0, time.UTC)
		}
		b = appendOrdered(b, x.Unix()*1_000_000+int64(x.Nanosecond()/1000))
	case datum.Decimal:
		b = d.Dec.AppendCanonical(b)
	case datum.Float:
		b = appendFloat(b, col, d.Float)
	case datum.Int, datum.Bool:
		b = appendOrdered(b, d.Int)
	default:
		if s, ok := d.Any.(string); ok && col.typeOID == oidUUID {
			b = append(b, strings.Map(func(r rune) rune {
				if r == '-' || r == '{' || r == '}' {
					return -1
				}
				return r
			}, strings.ToLower(s))...)
		} else {
			b = fmt.Append(b, d.Any)
		}
	}
	return append(b, 0)
}

func ptr[T any](v T) *T { return &v }

// appendOrdered appends v as 8 big-endian bytes with the sign bit flipped,
// which compare as the numbers do.
func appendOrdered(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v)^(1<<63))
}
