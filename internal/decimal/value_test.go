package decimal

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// decimalCases are literals around every boundary of the int64 fast path:
// 18 and 19 digits, signs, zeros, exponents and long fractions.
func decimalCases() []string {
	cases := []string{"0", "-0", "0.00000000", "1", "-1", "0.00000001", "99999999999.99999999", "100000000000",
		"67234.12345678", "1e10", "1.5e-3", "123456789012345678", "1234567890123456789", "-999999999999999999",
		"-9999999999999999999", "000123.4500", "+42", "12.3400", "5e4", "1e-30", "7e+3", "0e5",
		"123456789012345678901234567890.123456789", "0.000000000000000000001"}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		coef := rng.Int64N(1 << 62)
		if rng.IntN(2) == 0 {
			coef = -coef
		}
		cases = append(cases, fmt.Sprintf("%de%d", coef, rng.IntN(40)-30))
	}
	return cases
}

func TestDecimalAgreesWithTheBigIntFunctions(t *testing.T) {
	cases := decimalCases()
	for _, c := range cases {
		want, err := Parse(c)
		require.NoError(t, err, c)
		got, err := ParseString(c)
		require.NoError(t, err, c)
		fromBytes, err := ParseBytes([]byte(c))
		require.NoError(t, err, c)
		assert.Equal(t, got, fromBytes, c)
		assert.Zero(t, Compare(want, got.Numeric()), "%s parsed as %s", c, got)
		assert.Equal(t, String(want), got.String(), c)
		assert.Equal(t, Sign(want), got.Sign(), c)
		for _, ps := range [][2]int{{20, 8}, {24, 2}, {10, 4}, {38, 18}, {5, 0}, {0, 0}} {
			wantErr, gotErr := Fit(want, ps[0], ps[1]), got.Fit(ps[0], ps[1])
			assert.Equal(t, wantErr == nil, gotErr == nil, "Fit(%s, %d, %d): %v vs %v", c, ps[0], ps[1], wantErr, gotErr)
			if wantErr != nil && gotErr != nil {
				assert.Equal(t, wantErr.Error(), gotErr.Error())
			}
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 5000 {
		a, b := cases[rng.IntN(len(cases))], cases[rng.IntN(len(cases))]
		x, _ := ParseString(a)
		y, _ := ParseString(b)
		assert.Equal(t, Compare(x.Numeric(), y.Numeric()), x.Cmp(y), "%s vs %s", a, b)
		sameCanonical := string(x.AppendCanonical(nil)) == string(y.AppendCanonical(nil))
		assert.Equal(t, Compare(x.Numeric(), y.Numeric()) == 0, sameCanonical, "%s vs %s", a, b)
	}
}

func TestDecimalCanonicalIsEqualForEqualValues(t *testing.T) {
	for _, pair := range [][2]string{{"1.50", "1.5"}, {"0", "0.0000"}, {"-0", "0"}, {"1e2", "100"}, {"100.00", "1E+2"}} {
		a, err := ParseString(pair[0])
		require.NoError(t, err)
		b, err := ParseString(pair[1])
		require.NoError(t, err)
		assert.Equal(t, string(a.AppendCanonical(nil)), string(b.AppendCanonical(nil)), pair)
	}
}

func TestParseBytesRejectsWhatParseRejects(t *testing.T) {
	for _, in := range []string{"", "-", ".", "abc", "1.2.3", "1e", "1e+x", "NaN", "Infinity", "0x10", "1,5", "1e99999999999", "1e-"} {
		_, err := ParseBytes([]byte(in))
		assert.Error(t, err, "%q", in)
		_, oldErr := Parse(in)
		assert.Error(t, oldErr, "%q", in)
	}
}

func TestParsingASmallDecimalAllocatesNothing(t *testing.T) {
	lit := []byte("67234.12345678")
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := ParseBytes(lit); err != nil {
			t.Fatal(err)
		}
	})
	assert.Zero(t, allocs)
}

func TestCanonicalKeysAgreeAcrossTheInt64Boundary(t *testing.T) {
	for _, pair := range [][2]string{{"1", "1.0000000000000000000"}, {"12345678901234567890", "1234567890123456789e1"}, {"0", "0.00000000000000000000000"}} {
		a, err := ParseString(pair[0])
		require.NoError(t, err)
		b, err := ParseString(pair[1])
		require.NoError(t, err)
		require.Zero(t, a.Cmp(b))
		assert.Equal(t, string(a.AppendCanonical(nil)), string(b.AppendCanonical(nil)), pair)
	}
}
