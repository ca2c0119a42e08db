package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Error codes of rejected messages, as qiflow's dead letters name them
// (docs/wire-format.md, "Rejections").
const (
	codeInvalidJSON  = "invalid_json"
	codeMissingField = "missing_field"
	codeInvalidField = "invalid_field"
	codeValidation   = "validation_failed"
	codeInvalidValue = "invalid_value"
)

// rejection says why a message can never become a row.
type rejection struct{ code, reason string }

func (r *rejection) Error() string { return r.code + ": " + r.reason }

func reject(code, format string, args ...any) *rejection {
	return &rejection{code, fmt.Sprintf(format, args...)}
}

// price is one row of crypto_prices, decoded from a message. Its byte slices
// point into the message or into the decoder's arena.
type price struct {
	lastUpdated int64 // microseconds since 2000-01-01 UTC, as timestamptz stores it
	coinID      []byte
	symbol      []byte
	exchangeID  []byte
	usdPrice    decimal
	marketCap   decimal // each optional number is NULL when !valid
	volume24h   decimal
	change24h   decimal
	change7d    decimal
	source      []byte
	attribution []byte
}

// decimal is digits × 10^exp exactly, digits without leading or trailing
// zeros (none for zero).
type decimal struct {
	valid  bool
	neg    bool
	digits []byte
	exp    int
}

// column is what the table allows for one value: varchar(n) characters, or
// NUMERIC(precision, scale).
type column struct {
	name             string
	chars            int // 0 for text
	precision, scale int
}

var (
	colCoinID      = column{name: "coin_id", chars: 64}
	colSymbol      = column{name: "symbol", chars: 32}
	colExchangeID  = column{name: "exchange_id", chars: 64}
	colSource      = column{name: "source", chars: 64}
	colAttribution = column{name: "attribution"}
	colUSDPrice    = column{name: "usd_price", precision: 20, scale: 8}
	colMarketCap   = column{name: "market_cap", precision: 24, scale: 2}
	colVolume24h   = column{name: "volume_24h", precision: 24, scale: 2}
	colChange24h   = column{name: "change_24h", precision: 10, scale: 4}
	colChange7d    = column{name: "change_7d", precision: 10, scale: 4}
)

// The JSON value kinds a field can hold.
const (
	kindAbsent = iota
	kindNull
	kindString
	kindNumber
	kindOther // true, false, an object or an array
)

// value is one member's raw JSON value: for a string its body without the
// quotes, escapes still in when escaped.
type value struct {
	kind    int
	raw     []byte
	escaped bool
}

// decoder turns messages into prices, reusing one arena for the bytes a
// message does not hold verbatim (unescaped strings, lower-cased exchanges,
// decimal digits). Reset it before each batch.
type decoder struct{ arena []byte }

func (d *decoder) reset() { d.arena = d.arena[:0] }

// fields are a price message's members, in the order the row is checked.
type fields struct {
	lastUpdated, coinID, symbol, exchangeID, usdPrice, source, attribution value
	marketCap, volume24h, change24h, change7d                              value
}

// decode reads one price message in one pass and checks it by the wire
// format's rules and the table's column types.
func (d *decoder) decode(msg []byte) (price, error) {
	var f fields
	if err := scanObject(msg, &f); err != nil {
		return price{}, err
	}
	var p price
	var err error
	if p.lastUpdated, err = d.timestamp("lastUpdated", f.lastUpdated); err != nil {
		return price{}, err
	}
	if p.coinID, err = d.text("coinId", f.coinID, colCoinID); err != nil {
		return price{}, err
	}
	if p.symbol, err = d.text("symbol", f.symbol, colSymbol); err != nil {
		return price{}, err
	}
	if p.exchangeID, err = d.text("exchangeId", f.exchangeID, colExchangeID); err != nil {
		return price{}, err
	}
	p.exchangeID = d.lower(p.exchangeID)
	if p.usdPrice, err = d.number("usdPrice", f.usdPrice, colUSDPrice, true); err != nil {
		return price{}, err
	}
	if p.usdPrice.neg || len(p.usdPrice.digits) == 0 {
		return price{}, reject(codeValidation, "usdPrice must be > 0")
	}
	if p.marketCap, err = d.number("marketCap", f.marketCap, colMarketCap, false); err != nil {
		return price{}, err
	}
	if p.volume24h, err = d.number("volume24h", f.volume24h, colVolume24h, false); err != nil {
		return price{}, err
	}
	if p.change24h, err = d.number("change24h", f.change24h, colChange24h, false); err != nil {
		return price{}, err
	}
	if p.change7d, err = d.number("change7d", f.change7d, colChange7d, false); err != nil {
		return price{}, err
	}
	if p.source, err = d.text("source", f.source, colSource); err != nil {
		return price{}, err
	}
	if p.attribution, err = d.text("attribution", f.attribution, colAttribution); err != nil {
		return price{}, err
	}
	return p, nil
}

// text is a required, trimmed, non-empty string that fits col.
func (d *decoder) text(field string, v value, col column) ([]byte, error) {
	switch v.kind {
	case kindAbsent, kindNull:
		return nil, reject(codeMissingField, "%s is required", field)
	case kindString:
	default:
		return nil, reject(codeInvalidField, "%s is not a string", field)
	}
	s, err := d.unescape(field, v)
	if err != nil {
		return nil, err
	}
	if s = bytes.TrimSpace(s); len(s) == 0 {
		return nil, reject(codeInvalidField, "%s is empty", field)
	}
	if !utf8.Valid(s) || bytes.IndexByte(s, 0) >= 0 {
		return nil, reject(codeInvalidValue, "column %s: not valid UTF-8 text", col.name)
	}
	if col.chars > 0 && len(s) > col.chars && utf8.RuneCount(s) > col.chars {
		return nil, reject(codeInvalidValue, "column %s: %d characters, the column allows %d", col.name, utf8.RuneCount(s), col.chars)
	}
	return s, nil
}

// unescape returns a string's text, decoding escapes into the arena.
func (d *decoder) unescape(field string, v value) ([]byte, error) {
	if !v.escaped {
		return v.raw, nil
	}
	var s string
	quoted := make([]byte, 0, len(v.raw)+2)
	quoted = append(append(append(quoted, '"'), v.raw...), '"')
	if err := json.Unmarshal(quoted, &s); err != nil {
		return nil, reject(codeInvalidJSON, "%s: bad escape", field)
	}
	start := len(d.arena)
	d.arena = append(d.arena, s...)
	return d.arena[start:], nil
}

// lower lower-cases an exchange id, in place of a copy only when it must.
func (d *decoder) lower(s []byte) []byte {
	for _, c := range s {
		if c >= 0x80 {
			return bytes.ToLower(s)
		}
	}
	if !bytes.ContainsFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' }) {
		return s
	}
	start := len(d.arena)
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		d.arena = append(d.arena, c)
	}
	return d.arena[start:]
}

// number is a JSON number or a decimal string, exact, that fits col: no
// more integer digits than precision-scale and no non-zero digit past scale
// (PostgreSQL would round it away).
func (d *decoder) number(field string, v value, col column, required bool) (decimal, error) {
	lit := v.raw
	switch v.kind {
	case kindAbsent, kindNull:
		if required {
			return decimal{}, reject(codeMissingField, "%s is required", field)
		}
		return decimal{}, nil
	case kindString:
		s, err := d.unescape(field, v)
		if err != nil {
			return decimal{}, err
		}
		lit = bytes.TrimSpace(s)
	case kindNumber:
	default:
		return decimal{}, reject(codeInvalidField, "%s is not a decimal", field)
	}
	n, ok := d.parseDecimal(lit)
	if !ok {
		return decimal{}, reject(codeInvalidField, "%s: %q is not a decimal", field, lit)
	}
	if frac := -n.exp; frac > col.scale {
		return decimal{}, reject(codeInvalidValue, "column %s: %s has more than %d decimal places", col.name, lit, col.scale)
	}
	if ints := len(n.digits) + n.exp; len(n.digits) > 0 && ints > col.precision-col.scale {
		return decimal{}, reject(codeInvalidValue, "column %s: %s has more than %d integer digits", col.name, lit, col.precision-col.scale)
	}
	return n, nil
}

// maxExponent bounds exponents, far beyond any column's precision, so that
// digit arithmetic cannot overflow.
const maxExponent = 1 << 20

// parseDecimal reads [+-]digits[.digits][(e|E)[+-]digits], where either
// digit run may be empty but not both.
func (d *decoder) parseDecimal(s []byte) (decimal, bool) {
	n := decimal{valid: true}
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		n.neg = s[i] == '-'
		i++
	}
	start := len(d.arena)
	sawDigit, sawPoint := false, false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if c != '0' || len(d.arena) > start {
				d.arena = append(d.arena, c)
			}
			if sawPoint {
				n.exp--
			}
		case c == '.' && !sawPoint:
			sawPoint = true
		case (c == 'e' || c == 'E') && sawDigit:
			e, err := strconv.Atoi(string(s[i+1:]))
			if err != nil || e < -maxExponent || e > maxExponent {
				return decimal{}, false
			}
			n.exp += e
			i = len(s)
		default:
			return decimal{}, false
		}
	}
	if !sawDigit {
		return decimal{}, false
	}
	digits := d.arena[start:]
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		n.exp++
	}
	if len(digits) == 0 {
		return decimal{valid: true}, true
	}
	n.digits = digits
	return n, true
}

// PostgreSQL's timestamptz: microseconds since 2000-01-01 UTC, from 4714 BC
// to before 294277 AD.
const (
	pgEpochMicros = 946_684_800_000_000
	minPGMicros   = -211_813_488_000_000_000
	endPGMicros   = 9_223_371_331_200_000_000
)

// timestamp is RFC 3339 text or integer epoch milliseconds, as the
// microseconds timestamptz stores (sub-microsecond digits are truncated).
func (d *decoder) timestamp(field string, v value) (int64, error) {
	var micros int64
	switch v.kind {
	case kindAbsent, kindNull:
		return 0, reject(codeMissingField, "%s is required", field)
	case kindString:
		s, err := d.unescape(field, v)
		if err != nil {
			return 0, err
		}
		t, err := time.Parse(time.RFC3339Nano, string(bytes.TrimSpace(s)))
		if err != nil {
			return 0, reject(codeInvalidField, "%s is not an RFC 3339 timestamp", field)
		}
		micros = t.UnixMicro() - pgEpochMicros
	case kindNumber:
		ms, err := strconv.ParseInt(string(v.raw), 10, 64)
		if err != nil || ms < -9e15 || ms > 9e15 {
			return 0, reject(codeInvalidField, "%s is neither RFC 3339 nor integer epoch milliseconds", field)
		}
		micros = ms*1000 - pgEpochMicros
	default:
		return 0, reject(codeInvalidField, "%s is not a timestamp", field)
	}
	if micros < minPGMicros || micros >= endPGMicros {
		return 0, reject(codeInvalidValue, "column last_updated: %s is out of range", field)
	}
	return micros, nil
}
