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

// pow10Uint16 is 10^0 … 10^3, the place values of a base-10000 digit.
var pow10Uint16 = [4]uint16{1, 10, 100, 1000}

// appendNumeric appends coef × 10^exp in PostgreSQL's binary NUMERIC format:
// ndigits, weight, sign and dscale as 16-bit words, then base-10000 digits,
// most significant first, with weight the power of 10000 of the first.
//
// The decimal digit of place value 10^p goes into the base-10000 digit of
// weight ⌊p/4⌋ with place value 10^(p mod 4); an int64 has at most 19
// digits, so at most 6 base-10000 digits result.
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
	if abs == 0 {
		return appendNumericHeader(buf, 0, 0, numericPositive, dscale)
	}
	var scratch [20]byte
	digits := strconv.AppendUint(scratch[:0], abs, 10)
	last := int(exp) + len(digits) - 1 // the place value of the first digit
	weight := last >> 2                // arithmetic shift: ⌊last/4⌋ also below 0
	var groups [8]uint16
	count := weight - int(exp)>>2 + 1
	for i, c := range digits {
		p := last - i
		groups[weight-p>>2] += uint16(c-'0') * pow10Uint16[p&3]
	}
	for groups[count-1] == 0 {
		count-- // trailing zero digits are implied by the weight
	}
	buf = appendNumericHeader(buf, count, weight, sign, dscale)
	for _, g := range groups[:count] {
		buf = binary.BigEndian.AppendUint16(buf, g)
	}
	return buf
}

func appendNumericHeader(buf []byte, ndigits, weight int, sign, dscale uint16) []byte {
	buf = binary.BigEndian.AppendUint16(buf, uint16(ndigits))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	buf = binary.BigEndian.AppendUint16(buf, sign)
	return binary.BigEndian.AppendUint16(buf, dscale)
}
