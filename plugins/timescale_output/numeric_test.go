package timescale_output

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/result"
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
	for _, c := range numericCases() {
		n, err := decimal.ParseString(c)
		require.NoError(t, err)
		ours, err := n.AppendBinary(nil)
		require.NoError(t, err)
		var back pgtype.Numeric
		require.NoError(t, m.Scan(pgtype.NumericOID, pgtype.BinaryFormatCode, ours, &back), c)
		assert.Equal(t, 0, decimal.Compare(n.Numeric(), back), "%s decoded as %s", c, decimal.String(back))
	}
}

// TestBinaryCopyRoundTripsThroughPostgreSQL writes rows the way the output
// does (cell, appendField, copyRows) into columns of every type it encodes
// itself, and reads them back as text.
func TestBinaryCopyRoundTripsThroughPostgreSQL(t *testing.T) {
	dsn := testenv.Database(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE n (i int4, v numeric, s int2, b int8, f4 float4, f8 float8, ok bool,
		ts timestamptz, lts timestamp, d date, c char(4), vc varchar(8), j jsonb, js json, u uuid)`)
	require.NoError(t, err)
	tbl, err := loadTable(ctx, conn, pgx.Identifier{"n"})
	require.NoError(t, err)
	cols, err := tbl.pick(tbl.order)
	require.NoError(t, err)

	zone := time.FixedZone("UTC+2", 2*3600)
	extra := []any{int64(-7), int64(1 << 40), 1.5, -0.25, true,
		time.Date(2026, 11, 26, 12, 0, 0, 123456789, time.UTC), time.Date(2026, 11, 26, 23, 30, 0, 0, zone),
		time.Date(1999, 12, 31, 22, 0, 0, 0, zone), "ab", "héllo", map[string]any{"k": "v"}, []any{int64(1)},
		"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"}
	wantExtra := "-7|1099511627776|1.5|-0.25|t|2026-11-26 12:00:00.123456+00|2026-11-26 23:30:00|1999-12-31|ab  |héllo|{\"k\": \"v\"}|[1]|a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
	cases := numericCases()
	var rows []row
	e := newEncodedBatch(len(cols))
	defer e.release()
	for i, c := range cases {
		n, err := decimal.ParseString(c)
		require.NoError(t, err)
		e.cells[0], e.cells[1] = datum.OfInt(int64(i)), datum.OfDecimal(n)
		for j, v := range extra {
			e.cells[2+j] = fromGo(v)
		}
		require.NoError(t, e.add(i, cols, nil), c)
	}
	rows = e.finish()
	_, err = conn.Exec(ctx, "SET TIME ZONE 'UTC'")
	require.NoError(t, err)
	copied, err := copyRows(ctx, conn.PgConn(), "COPY n FROM STDIN (FORMAT binary)", rows)
	require.NoError(t, err)
	assert.Equal(t, int64(len(cases)), copied)

	got, err := conn.Query(ctx, `SELECT v::text, concat_ws('|', s, b, f4, f8, ok, ts, lts, d, c::text || '  ', vc, j, js, u) FROM n ORDER BY i`)
	require.NoError(t, err)
	texts, err := pgx.CollectRows(got, func(r pgx.CollectableRow) ([2]string, error) {
		var v [2]string
		return v, r.Scan(&v[0], &v[1])
	})
	require.NoError(t, err)
	for i, c := range cases {
		n, _ := decimal.Parse(c)
		assert.Equal(t, decimal.String(n), texts[i][0], "%s keeps its digits and scale", c)
		assert.Equal(t, wantExtra, texts[i][1])
	}
}

// TestAValuePgxCannotEncodeFailsItsMessageAlone writes through the mapping
// path into a uuid column, which pgx encodes: a bad uuid after a good row
// is that message's BUSINESS failure (it crashed the process before: the
// batch's buffer was lost).
func TestAValuePgxCannotEncodeFailsItsMessageAlone(t *testing.T) {
	dsn := testenv.Database(t)
	exec(t, dsn, "CREATE TABLE ids (id uuid PRIMARY KEY, n int4 NOT NULL)")
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: ids\nmapping: 'root = this'\n", dsn))
	batch := service.MessageBatch{
		service.NewMessage([]byte(`{"id":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","n":1}`)),
		service.NewMessage([]byte(`{"id":"not-a-uuid","n":2}`)),
		service.NewMessage([]byte(`{"id":"b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","n":3}`)),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 1)
	assert.Contains(t, failed[1].Error(), "column id uuid")
	assert.Equal(t, []string{"1", "3"}, queryStrings(t, dsn, "SELECT n::text FROM ids ORDER BY n"))
}

// TestDomainColumnsAreWrittenAsTheirBaseType writes into columns of domain
// types, which are encoded as their base types and keep their checks.
func TestDomainColumnsAreWrittenAsTheirBaseType(t *testing.T) {
	dsn := testenv.Database(t)
	exec(t, dsn, `CREATE DOMAIN positive_price AS numeric(20,8) CHECK (VALUE > 0);
CREATE DOMAIN tick_time AS timestamptz NOT NULL;
CREATE DOMAIN small_count AS int4;
CREATE TABLE ticks (at tick_time PRIMARY KEY, price positive_price, n small_count)`)
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: ticks\nmapping: 'root = this'\n", dsn))
	batch := service.MessageBatch{
		service.NewMessage([]byte(`{"at":"2026-11-26T12:00:00Z","price":"67234.12345678","n":7}`)),
		service.NewMessage([]byte(`{"at":"2026-11-26T12:00:01Z","price":"-1","n":8}`)),
		service.NewMessage([]byte(`{"at":"2026-11-26T12:00:02Z","price":"1.123456789","n":9}`)),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 2)
	assert.Equal(t, "23514", result.Classify(failed[1]).Code, "the domain's CHECK applies")
	assert.Contains(t, failed[2].Error(), "more than 8 decimal places", "the base type's scale applies")
	assert.Equal(t, []string{"2026-11-26 12:00:00+00|67234.12345678|7"},
		queryStrings(t, dsn, "SELECT concat_ws('|', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00', price, n) FROM ticks"))
}
