package decimal

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgtype"
)

// Numeric sign words of PostgreSQL's binary NUMERIC format.
const (
	numericPositive = 0x0000
	numericNegative = 0x4000
)

// AppendBinary appends d in PostgreSQL's binary NUMERIC format, as the
// numeric_recv function reads it (binary COPY, binary parameters). An
// int64 coefficient is grouped into base-10000 digits directly; a larger
// one, or an exponent beyond ±1000, takes pgx's encoder.
func (d Decimal) AppendBinary(buf []byte) ([]byte, error) {
	if d.big == nil && d.exp >= -1000 && d.exp <= 1000 {
		return appendNumeric(buf, d.small, d.exp), nil
	}
	return encodeWithPgx(d.Numeric(), buf)
}

// pgxNumeric is pgx's NUMERIC encoder for the values appendNumeric does not
// take. A pgtype.Map is not safe for concurrent use, hence the lock; the
// path is rare.
var pgxNumeric struct {
	sync.Mutex
	m *pgtype.Map
}

func encodeWithPgx(n pgtype.Numeric, buf []byte) ([]byte, error) {
	pgxNumeric.Lock()
	defer pgxNumeric.Unlock()
	if pgxNumeric.m == nil {
		pgxNumeric.m = pgtype.NewMap()
	}
	out, err := pgxNumeric.m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, buf)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", String(n), err)
	}
	return out, nil
}

// appendNumeric appends coef × 10^exp in PostgreSQL's binary NUMERIC format:
// ndigits, weight, sign and dscale as 16-bit words, then base-10000 digits,
// most significant first, with weight the power of 10000 of the first.
func appendNumeric(buf []byte, coef int64, exp int32) []byte {
	sign := uint16(numericPositive)
	abs := uint64(coef)
	if coef < 0 {
		sign, abs = numericNegative, uint64(-coef)
	}
	dscale := uint16(0)
	if exp < 0 {
		dscale = uint16(-exp)
	}

	// The decimal digits, aligned so that the decimal point falls on a
	// 4-digit group boundary: the integer part left-padded, the fraction
	// right-padded. intLen is how many digits stand before the point
	// (negative when the value starts that many zeros after it).
	var scratch [24]byte
	digits := strconv.AppendUint(scratch[:0], abs, 10)
	intLen := len(digits) + int(exp)
	lead := 0
	if intLen > 0 {
		lead = (4 - intLen%4) % 4
	}
	var aligned [2100]byte
	pos := 0
	pad := func(n int) {
		for range n {
			aligned[pos] = '0'
			pos++
		}
	}
	pad(lead)
	pad(-min(intLen, 0))
	pos += copy(aligned[pos:], digits)
	pad(max(int(exp), 0))
	pad((4 - pos%4) % 4)
	// The first group's power of 10000: one less than the groups before the
	// point.
	weight := (lead+max(intLen, 0))/4 - 1

	var groupBuf [530]uint16
	groups := groupBuf[:0]
	for i := 0; i < pos; i += 4 {
		g := uint16(aligned[i]-'0')*1000 + uint16(aligned[i+1]-'0')*100 + uint16(aligned[i+2]-'0')*10 + uint16(aligned[i+3]-'0')
		groups = append(groups, g)
	}
	for len(groups) > 0 && groups[0] == 0 {
		groups = groups[1:]
		weight--
	}
	for len(groups) > 0 && groups[len(groups)-1] == 0 {
		groups = groups[:len(groups)-1]
	}
	if len(groups) == 0 {
		weight, sign = 0, numericPositive
	}

	buf = binary.BigEndian.AppendUint16(buf, uint16(len(groups)))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	buf = binary.BigEndian.AppendUint16(buf, dscale)
	for _, g := range groups {
		buf = binary.BigEndian.AppendUint16(buf, g)
	}
	return buf
}
