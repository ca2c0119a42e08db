package timescale_output

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/testenv"
)

// numericCases are decimals that exercise every alignment of the decimal
// point against the base-10000 groups, signs, zeros and exponents.
func numericCases() []string {
	cases := []string{"0", "0.00000000", "-0.5", "1", "-1", "10000", "9999", "10000.0001", "0.00000001",
		"99999999999.99999999", "67234.12345678", "1e10", "1.5e-3", "123456789012345678", "-9223372036854775807",
		"0.1", "0.01", "0.001", "0.0001", "0.00001", "12.3400", "100000000", "5e4"}
	rng := rand.New(rand.NewPCG(7, 7))
	for range 500 {
		coef := rng.Int64N(1 << 62)
		if rng.IntN(2) == 0 {
			coef = -coef
		}
		cases = append(cases, fmt.Sprintf("%de%d", coef, rng.IntN(40)-30))
	}
	return cases
}

func TestFastNumericEncodingDecodesToTheSameValue(t *testing.T) {
	m := pgtype.NewMap()
	registerNumericCodec(m)
	for _, c := range numericCases() {
		n, err := decimal.Parse(c)
		require.NoError(t, err)
		ours, err := m.Encode(pgtype.NumericOID, pgtype.BinaryFormatCode, n, nil)
		require.NoError(t, err)
		var back pgtype.Numeric
		require.NoError(t, m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, ours, &back), c)
		assert.Equal(t, 0, decimal.Compare(n, back), "%s decoded as %s", c, decimal.String(back))
	}
}

func TestFastNumericEncodingRoundTripsThroughPostgreSQL(t *testing.T) {
	dsn := testenv.Database(t)
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)
	registerNumericCodec(conn.TypeMap())
	_, err = conn.Exec(ctx, "CREATE TABLE n (i int, v numeric)")
	require.NoError(t, err)

	cases := numericCases()
	var rows [][]any
	for i, c := range cases {
		n, err := decimal.Parse(c)
		require.NoError(t, err)
		rows = append(rows, []any{i, n})
	}
	_, err = conn.CopyFrom(ctx, pgx.Identifier{"n"}, []string{"i", "v"}, pgx.CopyFromRows(rows))
	require.NoError(t, err)

	got, err := conn.Query(ctx, "SELECT i, v::text FROM n ORDER BY i")
	require.NoError(t, err)
	texts, err := pgx.CollectRows(got, func(r pgx.CollectableRow) (string, error) {
		var i int
		var s string
		return s, r.Scan(&i, &s)
	})
	require.NoError(t, err)
	for i, c := range cases {
		n, _ := decimal.Parse(c)
		assert.Equal(t, decimal.String(n), texts[i], "%s keeps its digits and scale", c)
	}
}
