// Package datum holds one value of a table row as qiflow's decoders produce
// it and the timescale output writes it: typed, never boxed in an
// interface, with text that may alias the message it came from and exact
// decimals. A decoder fills a reused []Datum for each message, so that the
// hot path allocates nothing per value.
package datum

import (
	"time"
	"unsafe"

	"github.com/qicore/qiflow/internal/decimal"
)

// Kind says which field of a Datum holds its value.
type Kind uint8

// The kinds of value.
const (
	Null    Kind = iota // no value: SQL NULL
	Text                // Bytes, UTF-8
	Time                // Time
	Decimal             // Dec
	Int                 // Int
	Float               // Float
	Bool                // Int, 0 or 1
	Any                 // Any: a Go value of another type, as a mapping returns it
)

// Datum is one value. Bytes may alias a message's bytes, which are never
// modified; a Datum is used while its message is.
type Datum struct {
	Kind  Kind
	Bytes []byte
	Time  time.Time
	Dec   decimal.Decimal
	Int   int64
	Float float64
	Any   any
}

// OfText is text held in b.
func OfText(b []byte) Datum { return Datum{Kind: Text, Bytes: b} }

// OfString is text held in s, without copying it: the Datum's Bytes alias
// the string, and nothing may write to them.
func OfString(s string) Datum {
	return Datum{Kind: Text, Bytes: unsafe.Slice(unsafe.StringData(s), len(s))}
}

// OfTime is a point in time.
func OfTime(t time.Time) Datum { return Datum{Kind: Time, Time: t} }

// OfDecimal is an exact decimal.
func OfDecimal(d decimal.Decimal) Datum { return Datum{Kind: Decimal, Dec: d} }

// OfInt is a whole number.
func OfInt(v int64) Datum { return Datum{Kind: Int, Int: v} }

// OfFloat is a floating-point number.
func OfFloat(v float64) Datum { return Datum{Kind: Float, Float: v} }

// OfBool is a boolean.
func OfBool(v bool) Datum {
	if v {
		return Datum{Kind: Bool, Int: 1}
	}
	return Datum{Kind: Bool}
}

// OfAny is a Go value of another type.
func OfAny(v any) Datum {
	if v == nil {
		return Datum{}
	}
	return Datum{Kind: Any, Any: v}
}

// String returns the text of a Text datum, as a new string.
func (d Datum) String() string { return string(d.Bytes) }

// Go returns the value as a plain Go value, for code off the hot path:
// string, time.Time, pgtype.Numeric, int64, float64, bool, the Any value, or
// nil.
func (d Datum) Go() any {
	switch d.Kind {
	case Text:
		return string(d.Bytes)
	case Time:
		return d.Time
	case Decimal:
		return d.Dec.Numeric()
	case Int:
		return d.Int
	case Float:
		return d.Float
	case Bool:
		return d.Int != 0
	case Any:
		return d.Any
	}
	return nil
}
