package decimal

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseIsExact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"0.00000001", "0.00000001"},
		{"99999999999.99999999", "99999999999.99999999"},
		{"67234.12345678", "67234.12345678"},
		{"-1.5", "-1.5"},
		{"+42", "42"},
		{"1e-8", "0.00000001"},
		{"1.5E3", "1500"},
		{"000123.4500", "123.4500"},
		{"0", "0"},
		{"123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"},
	}
	for _, tt := range tests {
		n, err := Parse(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, String(n), tt.in)
	}
}

func TestParseRejectsWhatIsNotADecimal(t *testing.T) {
	for _, in := range []string{"", "-", ".", "abc", "1.2.3", "1e", "1e+x", "NaN", "Infinity", "0x10", "1,5"} {
		_, err := Parse(in)
		assert.Error(t, err, "%q", in)
	}
}

func TestFit(t *testing.T) {
	tests := []struct {
		in               string
		precision, scale int
		ok               bool
	}{
		{"0.00000001", 20, 8, true},
		{"99999999999.99999999", 20, 8, true},
		{"999999999999.99999999", 20, 8, true}, // 12 integer digits: the most
		{"9999999999999.9", 20, 8, false},      // 13 integer digits
		{"1234567890123", 20, 8, false},        // 13 integer digits
		{"1.123456789", 20, 8, false},          // would be rounded
		{"1.1234567800", 20, 8, true},          // only zeros past the scale
		{"-99.9999", 7, 4, true},
		{"100.0001", 7, 4, true},
		{"1000.0001", 7, 4, false},
		{"12345", 0, 0, true}, // unconstrained
		{"1e3", 4, 0, true},
		{"1e4", 4, 0, false},
	}
	for _, tt := range tests {
		n, err := Parse(tt.in)
		require.NoError(t, err)
		err = Fit(n, tt.precision, tt.scale)
		if tt.ok {
			assert.NoError(t, err, "%s in NUMERIC(%d,%d)", tt.in, tt.precision, tt.scale)
		} else {
			assert.Error(t, err, "%s in NUMERIC(%d,%d)", tt.in, tt.precision, tt.scale)
		}
	}
}

func TestCompareAndSign(t *testing.T) {
	a, _ := Parse("1.50")
	b, _ := Parse("1.5")
	c, _ := Parse("2")
	z, _ := Parse("-0.0")
	assert.Equal(t, 0, Compare(a, b))
	assert.Equal(t, -1, Compare(b, c))
	assert.Equal(t, 1, Compare(c, a))
	assert.Equal(t, 0, Sign(z))
	assert.Equal(t, 1, Sign(a))
}
