package timescale_output

import (
	"encoding/binary"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// numericCodec is pgx's NUMERIC codec with a faster binary encoder for the
// values market data holds: coefficients that fit in 64 bits. pgx's own
// encoder works through big.Int division and exponentiation, which cost
// about a tenth of the output's CPU per row; this one formats the digits
// once and groups them. Other values (NaN, infinities, huge coefficients)
// take pgx's path.
type numericCodec struct{ pgtype.NumericCodec }

// registerNumericCodec makes the connection's type map encode NUMERIC with
// numericCodec.
func registerNumericCodec(m *pgtype.Map) {
	m.RegisterType(&pgtype.Type{Name: "numeric", OID: pgtype.NumericOID, Codec: numericCodec{}})
}

func (c numericCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	fallback := c.NumericCodec.PlanEncode(m, oid, format, value)
	if _, ok := value.(pgtype.Numeric); ok && format == pgtype.BinaryFormatCode && fallback != nil {
		return numericPlan{fallback: fallback}
	}
	return fallback
}

type numericPlan struct{ fallback pgtype.EncodePlan }

// Numeric sign words of the binary format.
const (
	numericPositive = 0x0000
	numericNegative = 0x4000
)

func (p numericPlan) Encode(value any, buf []byte) ([]byte, error) {
	n := value.(pgtype.Numeric)
	if !n.Valid {
		return nil, nil
	}
	if n.NaN || n.InfinityModifier != pgtype.Finite || n.Int == nil || !n.Int.IsInt64() || n.Exp < -1000 || n.Exp > 1000 {
		return p.fallback.Encode(value, buf)
	}
	return appendNumeric(buf, n.Int.Int64(), n.Exp), nil
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

	groups := make([]uint16, 0, pos/4)
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
