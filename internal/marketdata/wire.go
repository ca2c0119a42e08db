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
	"strings"
	"time"
	"unicode/utf8"

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

// decodeObject scans a message into the raw values of the named fields.
func decodeObject(data []byte, fields []string, out []raw) error {
	if err := scanObject(data, fields, out); err != nil {
		return result.Wrap(result.Business, CodeInvalidJSON, err, "message is not a JSON object of the wire format")
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

func invalid(field string, r raw, why string) error {
	return result.New(result.Business, CodeInvalidField, fmt.Sprintf("%s: %s is %s", field, abbreviate(r), why))
}

func abbreviate(r raw) string {
	if len(r) > 40 {
		return string(r[:37]) + "..."
	}
	return string(r)
}

// text decodes a required, non-empty JSON string, trimmed of white space.
func text(field string, r raw) ([]byte, error) {
	if r.isNull() {
		return nil, missing(field)
	}
	s, ok := unquote(r)
	if !ok {
		return nil, invalid(field, r, "not a string")
	}
	if s = bytes.TrimSpace(s); len(s) == 0 {
		return nil, invalid(field, r, "empty")
	}
	return s, nil
}

// number decodes a required JSON number or decimal string exactly.
func number(field string, r raw) (decimal.Decimal, error) {
	if r.isNull() {
		return decimal.Decimal{}, missing(field)
	}
	lit := []byte(r)
	if r[0] == '"' {
		s, ok := unquote(r)
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
func integer(field string, r raw) (int64, error) {
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
func timestamp(field string, r raw) (time.Time, error) {
	if r.isNull() {
		return time.Time{}, missing(field)
	}
	if r[0] == '"' {
		s, ok := unquote(r)
		if !ok {
			return time.Time{}, invalid(field, r, "not a timestamp")
		}
		t, err := time.Parse(time.RFC3339Nano, string(bytes.TrimSpace(s)))
		if err != nil {
			return time.Time{}, invalid(field, r, "not an RFC 3339 timestamp")
		}
		return t.UTC(), nil
	}
	ms, ok := epochMillis(r)
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
