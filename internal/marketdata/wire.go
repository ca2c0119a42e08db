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

	"github.com/jackc/pgx/v5/pgtype"

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

// unquote returns the text of a JSON string value.
func unquote(r raw) (string, bool) {
	if len(r) < 2 || r[0] != '"' {
		return "", false
	}
	body := r[1 : len(r)-1]
	if bytes.IndexByte(body, '\\') < 0 {
		return string(body), true
	}
	var s string
	if json.Unmarshal(r, &s) != nil {
		return "", false
	}
	return s, true
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

// text decodes a required, non-empty JSON string.
func text(field string, r raw) (string, error) {
	if r.isNull() {
		return "", missing(field)
	}
	s, ok := unquote(r)
	if !ok {
		return "", invalid(field, r, "not a string")
	}
	if s = strings.TrimSpace(s); s == "" {
		return "", invalid(field, r, "empty")
	}
	return s, nil
}

// number decodes a required JSON number or decimal string exactly.
func number(field string, r raw) (pgtype.Numeric, error) {
	if r.isNull() {
		return pgtype.Numeric{}, missing(field)
	}
	lit := string(r)
	if r[0] == '"' {
		s, ok := unquote(r)
		if !ok {
			return pgtype.Numeric{}, invalid(field, r, "not a decimal")
		}
		lit = strings.TrimSpace(s)
	}
	n, err := decimal.Parse(lit)
	if err != nil {
		return pgtype.Numeric{}, invalid(field, r, "not a decimal")
	}
	return n, nil
}

// optionalNumber decodes a number that may be absent or null.
func optionalNumber(field string, r raw) (any, error) {
	if r.isNull() {
		return nil, nil
	}
	return number(field, r)
}

// integer decodes a required whole number that fits an int32.
func integer(field string, r raw) (int32, error) {
	n, err := number(field, r)
	if err != nil {
		return 0, err
	}
	v, ok := decimal.Int64(n)
	if !ok || v < math.MinInt32 || v > math.MaxInt32 {
		return 0, invalid(field, r, "not a 32-bit whole number")
	}
	return int32(v), nil
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
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(s))
		if err != nil {
			return time.Time{}, invalid(field, r, "not an RFC 3339 timestamp")
		}
		return t.UTC(), nil
	}
	ms, err := strconv.ParseInt(string(r), 10, 64)
	if err != nil {
		return time.Time{}, invalid(field, r, "neither RFC 3339 nor integer epoch milliseconds")
	}
	return time.UnixMilli(ms).UTC(), nil
}

// NormalizeExchange is the ingest side's normalisation of an exchange id:
// trimmed and lower case. Aliases are the router's policy, on the producing
// side.
func NormalizeExchange(id string) string {
	return strings.ToLower(strings.TrimSpace(id))
}

func validation(format string, args ...any) error {
	return result.New(result.Business, CodeValidation, fmt.Sprintf(format, args...))
}

func positive(field string, n pgtype.Numeric) error {
	if decimal.Sign(n) <= 0 {
		return validation("%s must be > 0, got %s", field, decimal.String(n))
	}
	return nil
}
