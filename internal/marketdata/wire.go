// Package marketdata decodes and validates qiflow's wire format: one JSON
// object per message with camelCase keys, for prices, OHLCV candles and
// market analytics (DESIGN.md, "Wire format"). Numbers may be JSON numbers or
// decimal strings and decode exactly; timestamps are RFC 3339 strings or
// integer epoch milliseconds.
package marketdata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/result"
)

// Error codes of the BUSINESS errors this package returns.
const (
	CodeInvalidJSON  = "invalid_json"
	CodeMissingField = "missing_field"
	CodeInvalidField = "invalid_field"
	CodeValidation   = "validation_failed"
)

// raw is a JSON value kept as its bytes, so each field can be decoded with an
// error that names it. It aliases the message, which is never mutated.
type raw []byte

func (r raw) isNull() bool {
	return len(r) == 0 || bytes.Equal(r, []byte("null"))
}

// wireField is one field of a message as its format delivered it: the raw
// JSON value, or a value a binary format (Avro, Protobuf) decoded already.
// Both go through the same rules below, so a bad value is refused with the
// same code and reason whatever its format.
type wireField struct {
	json   raw
	value  datum.Datum
	binary bool
}

func (r wireField) isNull() bool {
	if r.binary {
		return r.value.Kind == datum.Null
	}
	return r.json.isNull()
}

// String shows the value in an error message.
func (r wireField) String() string {
	if r.binary {
		if r.value.Kind == datum.Text {
			return abbreviate(strconv.Quote(string(r.value.Bytes)))
		}
		return abbreviate(fmt.Sprint(r.value.Go()))
	}
	return abbreviate(string(r.json))
}

// decodeObject scans a message into the raw values of the named fields.
func decodeObject(data []byte, fields []string, out []wireField) error {
	var found [maxFields]raw
	if err := scanObject(data, fields, found[:len(fields)]); err != nil {
		return result.Wrap(result.Business, CodeInvalidJSON, err, "message is not a JSON object of the wire format")
	}
	for i := range out {
		out[i] = wireField{json: found[i]}
	}
	return nil
}

// unquote returns the text of a JSON string value. It aliases r unless the
// string holds escapes.
func unquote(r raw) ([]byte, bool) {
	if len(r) < 2 || r[0] != '"' {
		return nil, false
	}
	body := r[1 : len(r)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return body, true
	}
	var s string
	if json.Unmarshal(r, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

func missing(field string) error {
	return result.New(result.Business, CodeMissingField, fmt.Sprintf("%s is required", field))
}

func invalid(field string, r wireField, why string) error {
	return result.New(result.Business, CodeInvalidField, fmt.Sprintf("%s: %s is %s", field, r, why))
}

func abbreviate(s string) string {
	if len(s) > 40 {
		return s[:37] + "..."
	}
	return s
}

// text decodes a required, non-empty JSON string, trimmed of white space.
func text(field string, r wireField) ([]byte, error) {
	if r.isNull() {
		return nil, missing(field)
	}
	s, ok := r.value.Bytes, r.value.Kind == datum.Text
	if !r.binary {
		s, ok = unquote(r.json)
	}
	if !ok {
		return nil, invalid(field, r, "not a string")
	}
	if s = bytes.TrimSpace(s); len(s) == 0 {
		return nil, invalid(field, r, "empty")
	}
	return s, nil
}

// number decodes a required JSON number or decimal string exactly.
func number(field string, r wireField) (decimal.Decimal, error) {
	if r.isNull() {
		return decimal.Decimal{}, missing(field)
	}
	if r.binary {
		return binaryNumber(field, r)
	}
	lit := []byte(r.json)
	if r.json[0] == '"' {
		s, ok := unquote(r.json)
		if !ok {
			return decimal.Decimal{}, invalid(field, r, "not a decimal")
		}
		lit = bytes.TrimSpace(s)
	}
	n, err := decimal.ParseBytes(lit)
	if err != nil {
		return decimal.Decimal{}, invalid(field, r, "not a decimal")
	}
	return n, nil
}

// integer decodes a required whole number that fits an int32.
func integer(field string, r wireField) (int64, error) {
	n, err := number(field, r)
	if err != nil {
		return 0, err
	}
	v, ok := n.Int64()
	if !ok || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, invalid(field, r, "not a 32-bit whole number")
	}
	return v, nil
}

// timestamp decodes an RFC 3339 string or integer epoch milliseconds.
func timestamp(field string, r wireField) (time.Time, error) {
	if r.isNull() {
		return time.Time{}, missing(field)
	}
	if r.binary {
		return binaryTimestamp(field, r)
	}
	if r.json[0] == '"' {
		s, ok := unquote(r.json)
		if !ok {
			return time.Time{}, invalid(field, r, "not a timestamp")
		}
		t, err := time.Parse(time.RFC3339Nano, string(bytes.TrimSpace(s)))
		if err != nil {
			return time.Time{}, invalid(field, r, "not an RFC 3339 timestamp")
		}
		return t.UTC(), nil
	}
	ms, ok := epochMillis(r.json)
	if !ok {
		return time.Time{}, invalid(field, r, "neither RFC 3339 nor integer epoch milliseconds")
	}
	return time.UnixMilli(ms).UTC(), nil
}

// epochMillis parses an optionally negative integer, as
// strconv.ParseInt(string(r), 10, 64) would, without allocating.
func epochMillis(r raw) (int64, bool) {
	i, neg := 0, false
	if len(r) > 0 && r[0] == '-' {
		neg, i = true, 1
	}
	if i == len(r) || len(r)-i > 18 { // 18 digits: no overflow, and past year 30,000,000
		return 0, false
	}
	var v int64
	for ; i < len(r); i++ {
		c := r[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

// NormalizeExchange is the ingest side's normalisation of an exchange id:
// trimmed and lower case. Aliases are the router's policy, on the producing
// side.
func NormalizeExchange(id string) string {
	return strings.ToLower(strings.TrimSpace(id))
}

// normalizeExchange is NormalizeExchange for a trimmed id in bytes: it
// returns id itself when it is lower case already, as ids almost always are.
func normalizeExchange(id []byte) []byte {
	for _, c := range id {
		if c >= 'A' && c <= 'Z' || c >= utf8.RuneSelf {
			return []byte(strings.ToLower(string(id)))
		}
	}
	return id
}

func validation(format string, args ...any) error {
	return result.New(result.Business, CodeValidation, fmt.Sprintf(format, args...))
}

func positive(field string, n decimal.Decimal) error {
	if n.Sign() <= 0 {
		return validation("%s must be > 0, got %s", field, n)
	}
	return nil
}
