// Package decimal parses decimal literals exactly into pgtype.Numeric and
// checks them against a NUMERIC(precision, scale) column, so that no price
// ever passes through a float64.
package decimal

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// Parse reads a decimal literal, as it appears in a JSON number or a decimal
// string: an optional sign, digits with an optional fraction, and an
// optional exponent ("-12.5", "0.00000001", "1e-8"). It is exact: the result
// holds every digit given.
func Parse(s string) (pgtype.Numeric, error) {
	d, err := ParseString(s)
	if err != nil {
		return pgtype.Numeric{}, err
	}
	return d.Numeric(), nil
}

var (
	ten   = big.NewInt(10)
	pow10 [40]*big.Int
)

func init() {
	pow10[0] = big.NewInt(1)
	for i := 1; i < len(pow10); i++ {
		pow10[i] = new(big.Int).Mul(pow10[i-1], ten)
	}
}

func power(n int64) *big.Int {
	if n < int64(len(pow10)) {
		return pow10[n]
	}
	return new(big.Int).Exp(ten, big.NewInt(n), nil)
}

// Fit checks that n can be stored in a NUMERIC(precision, scale) column
// without losing a digit: at most precision-scale integer digits, and no
// non-zero digit past scale. PostgreSQL would round the latter silently.
// A precision of 0 means an unconstrained NUMERIC.
func Fit(n pgtype.Numeric, precision, scale int) error {
	if !n.Valid || n.NaN || n.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("not a finite number")
	}
	if precision == 0 {
		return nil
	}
	coef, exp := n.Int, int64(n.Exp)
	if frac := -exp; frac > int64(scale) {
		var rem big.Int
		quo := new(big.Int)
		quo.QuoRem(coef, power(frac-int64(scale)), &rem)
		if rem.Sign() != 0 {
			return fmt.Errorf("%s has more than %d decimal places", String(n), scale)
		}
		coef, exp = quo, -int64(scale)
	}
	// |coef| × 10^exp < 10^(precision-scale) ⇔ |coef| < 10^(precision-scale-exp)
	maxInt := int64(precision - scale)
	if limit := maxInt - exp; limit < 0 || coef.CmpAbs(power(limit)) >= 0 {
		if coef.Sign() == 0 {
			return nil
		}
		return fmt.Errorf("%s has more than %d integer digits, the most NUMERIC(%d,%d) allows", String(n), maxInt, precision, scale)
	}
	return nil
}

// Sign returns -1, 0 or +1.
func Sign(n pgtype.Numeric) int {
	return n.Int.Sign()
}

// Compare returns -1, 0 or +1 as a is less than, equal to or greater than b.
func Compare(a, b pgtype.Numeric) int {
	x, y := a.Int, b.Int
	switch {
	case a.Exp > b.Exp:
		x = new(big.Int).Mul(a.Int, power(int64(a.Exp-b.Exp)))
	case b.Exp > a.Exp:
		y = new(big.Int).Mul(b.Int, power(int64(b.Exp-a.Exp)))
	}
	return x.Cmp(y)
}

// String renders n exactly, without an exponent.
func String(n pgtype.Numeric) string {
	if !n.Valid {
		return "NULL"
	}
	s := new(big.Int).Abs(n.Int).String()
	sign := ""
	if n.Int.Sign() < 0 {
		sign = "-"
	}
	switch {
	case n.Exp >= 0:
		if n.Int.Sign() == 0 {
			return "0"
		}
		return sign + s + zeros(int(n.Exp))
	default:
		frac := int(-n.Exp)
		if len(s) <= frac {
			s = zeros(frac-len(s)+1) + s
		}
		return sign + s[:len(s)-frac] + "." + s[len(s)-frac:]
	}
}

func zeros(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = '0'
	}
	return string(b)
}

// Int64 returns n as an int64 when it is a whole number in range.
func Int64(n pgtype.Numeric) (int64, bool) {
	v := new(big.Int).Set(n.Int)
	switch {
	case n.Exp > 0:
		v.Mul(v, power(int64(n.Exp)))
	case n.Exp < 0:
		var rem big.Int
		v.QuoRem(v, power(int64(-n.Exp)), &rem)
		if rem.Sign() != 0 {
			return 0, false
		}
	}
	if !v.IsInt64() {
		return 0, false
	}
	return v.Int64(), true
}

// Canonical renders n without trailing zeros, so that equal values render
// equally ("1.50" and "1.5" both as "1.5").
func Canonical(n pgtype.Numeric) string {
	s := String(n)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		return "0"
	}
	return s
}
