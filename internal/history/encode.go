package history

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// WireKey returns the wire-format key of a column: its snake_case name in
// camelCase (usd_price → usdPrice, volume_24h → volume24h), which is how
// docs/wire-format.md names every shipped column.
func WireKey(column string) string {
	parts := strings.Split(column, "_")
	var b strings.Builder
	b.WriteString(parts[0])
	for _, p := range parts[1:] {
		if p == "" {
			continue
		}
		r, size := utf8.DecodeRuneInString(p)
		b.WriteString(strings.ToUpper(string(r)))
		b.WriteString(p[size:])
	}
	return b.String()
}

// timeLayout is RFC 3339 with as many fractional digits as the value has,
// up to PostgreSQL's microseconds: nothing is rounded away.
const timeLayout = "2006-01-02T15:04:05.999999Z07:00"

// postgresEpoch is the zero of PostgreSQL's binary timestamps.
var postgresEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Infinite timestamps in PostgreSQL's binary format.
const (
	binaryInfinity    = 1<<63 - 1
	binaryNegInfinity = -1 << 63
)

// decodeTime decodes a binary timestamptz.
func decodeTime(raw []byte) (time.Time, error) {
	if len(raw) != 8 {
		return time.Time{}, fmt.Errorf("timestamptz of %d bytes", len(raw))
	}
	us := int64(binary.BigEndian.Uint64(raw))
	if us == binaryInfinity || us == binaryNegInfinity {
		return time.Time{}, fmt.Errorf("infinite timestamp")
	}
	return postgresEpoch.Add(time.Duration(us/1e6) * time.Second).Add(time.Duration(us%1e6) * time.Microsecond), nil
}

// appendValue appends one column's raw value, as the plan selected it, as
// a JSON value; nil is null.
func appendValue(dst []byte, kind columnKind, raw []byte) ([]byte, error) {
	if raw == nil {
		return append(dst, "null"...), nil
	}
	switch kind {
	case kindTime:
		t, err := decodeTime(raw)
		if err != nil {
			return dst, err
		}
		dst = append(dst, '"')
		dst = t.UTC().AppendFormat(dst, timeLayout)
		return append(dst, '"'), nil
	case kindInt:
		switch len(raw) {
		case 2:
			return strconv.AppendInt(dst, int64(int16(binary.BigEndian.Uint16(raw))), 10), nil
		case 4:
			return strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(raw))), 10), nil
		case 8:
			return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(raw)), 10), nil
		}
		return dst, fmt.Errorf("integer of %d bytes", len(raw))
	case kindBool:
		if len(raw) != 1 {
			return dst, fmt.Errorf("boolean of %d bytes", len(raw))
		}
		return strconv.AppendBool(dst, raw[0] != 0), nil
	case kindJSON:
		return append(dst, raw...), nil
	}
	return appendString(dst, raw), nil
}

// appendString appends s as a JSON string.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
