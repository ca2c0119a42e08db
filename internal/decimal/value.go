package decimal

import (
	"fmt"
	"math"
	"math/big"
	"strconv"

	"github.com/jackc/pgx/v5/pgtype"
)

// Decimal is an exact decimal number, coefficient × 10^exponent. A
// coefficient of up to 18 digits (every price, volume and change that market
// data carries) lives in an int64, so parsing, checking and encoding it
// allocate nothing; a larger one is kept in a big.Int. The zero value is 0.
type Decimal struct {
	small int64
	big   *big.Int // nil unless the coefficient does not fit in small
	exp   int32
}

// maxSmallDigits is how many digits a coefficient may have and still be
// parsed into an int64 without overflow checks.
const maxSmallDigits = 18

// ParseBytes is Parse for a literal held in bytes, into a Decimal.
func ParseBytes(b []byte) (Decimal, error) { return parseDecimal(b) }

// ParseString is Parse into a Decimal.
func ParseString(s string) (Decimal, error) { return parseDecimal(s) }

// parseDecimal reads the literal grammar of Parse without allocating for
// coefficients of up to 18 digits.
func parseDecimal[T string | []byte](s T) (Decimal, error) {
	if len(s) == 0 {
		return Decimal{}, fmt.Errorf("empty decimal")
	}
	i := 0
	neg := false
	switch s[0] {
	case '-':
		neg = true
		i++
	case '+':
		i++
	}
	var (
		coef      uint64
		digits    int // significant digits, leading zeros skipped
		firstSig  = -1
		sawDigit  bool
		sawPoint  bool
		fracCount int64
		exp       int64
	)
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			sawDigit = true
			if digits > 0 || c != '0' {
				if digits == 0 {
					firstSig = i
				}
				digits++
				if digits <= maxSmallDigits {
					coef = coef*10 + uint64(c-'0')
				}
			}
			if sawPoint {
				fracCount++
			}
		case c == '.' && !sawPoint:
			sawPoint = true
		case (c == 'e' || c == 'E') && sawDigit:
			e, ok := parseExponent(s[i+1:])
			if !ok {
				return Decimal{}, fmt.Errorf("decimal %q: bad exponent", string(s))
			}
			exp = e
			i = len(s)
		default:
			return Decimal{}, fmt.Errorf("decimal %q: unexpected %q", string(s), rune(c))
		}
	}
	if !sawDigit {
		return Decimal{}, fmt.Errorf("decimal %q: no digits", string(s))
	}
	exp -= fracCount
	if exp < -1<<20 || exp > 1<<20 {
		return Decimal{}, fmt.Errorf("decimal %q: exponent out of range", string(s))
	}
	d := Decimal{exp: int32(exp)}
	if digits <= maxSmallDigits {
		d.small = int64(coef)
		if neg {
			d.small = -d.small
		}
		return d, nil
	}
	// A long coefficient: collect its digits, skipping the point.
	buf := make([]byte, 0, digits+1)
	if neg {
		buf = append(buf, '-')
	}
	for j := firstSig; j < len(s) && s[j] != 'e' && s[j] != 'E'; j++ {
		if s[j] != '.' {
			buf = append(buf, s[j])
		}
	}
	d.big, _ = new(big.Int).SetString(string(buf), 10)
	return d, nil
}

// parseExponent reads an optionally signed decimal exponent that fits an
// int32, as strconv.ParseInt(s, 10, 32) would.
func parseExponent[T string | []byte](s T) (int64, bool) {
	i, neg := 0, false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		i++
	}
	if i == len(s) {
		return 0, false
	}
	var v int64
	for ; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if v = v*10 + int64(c-'0'); v > math.MaxInt32+1 {
			return 0, false
		}
	}
	if neg {
		v = -v
	}
	if v > math.MaxInt32 || v < math.MinInt32 {
		return 0, false
	}
	return v, true
}

// FromNumeric converts a finite pgtype.Numeric.
func FromNumeric(n pgtype.Numeric) Decimal {
	if n.Int == nil {
		return Decimal{exp: n.Exp}
	}
	if n.Int.IsInt64() {
		return Decimal{small: n.Int.Int64(), exp: n.Exp}
	}
	return Decimal{big: n.Int, exp: n.Exp}
}

// FromInt64 is v × 10^0.
func FromInt64(v int64) Decimal { return Decimal{small: v} }

// Numeric returns d as a pgtype.Numeric.
func (d Decimal) Numeric() pgtype.Numeric {
	if d.big != nil {
		return pgtype.Numeric{Int: new(big.Int).Set(d.big), Exp: d.exp, Valid: true}
	}
	return pgtype.Numeric{Int: big.NewInt(d.small), Exp: d.exp, Valid: true}
}

// Sign returns -1, 0 or +1.
func (d Decimal) Sign() int {
	switch {
	case d.big != nil:
		return d.big.Sign()
	case d.small < 0:
		return -1
	case d.small > 0:
		return 1
	}
	return 0
}

// pow10Int64 holds 10^0 … 10^18, every power of ten an int64 holds.
var pow10Int64 = func() (p [19]int64) {
	p[0] = 1
	for i := 1; i < len(p); i++ {
		p[i] = p[i-1] * 10
	}
	return p
}()

// Cmp returns -1, 0 or +1 as d is less than, equal to or greater than e.
func (d Decimal) Cmp(e Decimal) int {
	if d.big == nil && e.big == nil {
		shift := int64(d.exp) - int64(e.exp)
		if shift >= 0 {
			return cmpScaled(d.small, e.small, shift)
		}
		return -cmpScaled(e.small, d.small, -shift)
	}
	return Compare(d.Numeric(), e.Numeric())
}

// cmpScaled compares x × 10^shift with y, shift ≥ 0, without overflow.
func cmpScaled(x, y int64, shift int64) int {
	if x == 0 || shift == 0 {
		return cmpInt(x, y)
	}
	if shift < int64(len(pow10Int64)) {
		p := pow10Int64[shift]
		if x <= math.MaxInt64/p && x >= math.MinInt64/p {
			return cmpInt(x*p, y)
		}
	}
	return new(big.Int).Mul(big.NewInt(x), power(shift)).Cmp(big.NewInt(y))
}

func cmpInt(x, y int64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// Fit is the package's Fit for a Decimal: it fails when d cannot be stored
// in NUMERIC(precision, scale) without losing a digit. A precision of 0
// means an unconstrained NUMERIC.
func (d Decimal) Fit(precision, scale int) error {
	if precision == 0 {
		return nil
	}
	if d.big != nil || d.small == math.MinInt64 {
		return Fit(d.Numeric(), precision, scale)
	}
	coef, exp := d.small, int64(d.exp)
	if frac := -exp; frac > int64(scale) {
		drop := frac - int64(scale)
		if drop >= int64(len(pow10Int64)) {
			if coef != 0 {
				return fmt.Errorf("%s has more than %d decimal places", d, scale)
			}
			return nil
		}
		if coef%pow10Int64[drop] != 0 {
			return fmt.Errorf("%s has more than %d decimal places", d, scale)
		}
		coef, exp = coef/pow10Int64[drop], -int64(scale)
	}
	if coef == 0 {
		return nil
	}
	// |coef| × 10^exp < 10^(precision-scale) ⇔ |coef| < 10^(precision-scale-exp)
	maxInt := int64(precision - scale)
	limit := maxInt - exp
	if limit >= int64(len(pow10Int64)) {
		return nil // every int64 coefficient is below 10^19
	}
	abs := coef
	if abs < 0 {
		abs = -abs
	}
	if limit < 0 || abs >= pow10Int64[limit] {
		return fmt.Errorf("%s has more than %d integer digits, the most NUMERIC(%d,%d) allows", d, maxInt, precision, scale)
	}
	return nil
}

// String renders d exactly, without an exponent.
func (d Decimal) String() string { return String(d.Numeric()) }

// AppendCanonical appends a rendering of d that is equal for equal values
// and different for different ones ("1.50" and "1.5" alike): the
// coefficient without trailing zeros and its exponent.
func (d Decimal) AppendCanonical(b []byte) []byte {
	if d.big != nil {
		// The same form as below: the coefficient without trailing zeros.
		coef, exp := new(big.Int).Set(d.big), int64(d.exp)
		var q, r big.Int
		for coef.Sign() != 0 {
			q.QuoRem(coef, ten, &r)
			if r.Sign() != 0 {
				break
			}
			coef.Set(&q)
			exp++
		}
		if coef.Sign() == 0 {
			return append(b, '0')
		}
		b = coef.Append(b, 10)
		b = append(b, 'e')
		return strconv.AppendInt(b, exp, 10)
	}
	coef, exp := d.small, d.exp
	if coef == 0 {
		return append(b, '0')
	}
	for coef%10 == 0 {
		coef /= 10
		exp++
	}
	b = strconv.AppendInt(b, coef, 10)
	b = append(b, 'e')
	return strconv.AppendInt(b, int64(exp), 10)
}

// Small returns the coefficient and exponent when the coefficient fits in an
// int64.
func (d Decimal) Small() (coef int64, exp int32, ok bool) {
	return d.small, d.exp, d.big == nil
}

// Int64 returns d as an int64 when it is a whole number in range.
func (d Decimal) Int64() (int64, bool) {
	if d.big == nil && d.exp == 0 {
		return d.small, true
	}
	return Int64(d.Numeric())
}

// New is coef × 10^exp.
func New(coef int64, exp int32) Decimal { return Decimal{small: coef, exp: exp} }
