package hypertableadmin_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// tradesSpec is a second spec in public, beside the shipped one.
const tradesSpec = `version: 1
schema: public
tables:
  - name: trades
    columns:
      - { name: at,    type: timestamptz,     not_null: true }
      - { name: venue, type: varchar(32),     not_null: true }
      - { name: price, type: "numeric(20,8)", not_null: true }
    primary_key: [at, venue]
    hypertable:
      time_column: at
      chunk_interval: 1 day
continuous_aggregates:
  - name: trades_1h
    source: trades
    bucket: 1 hour
    group_by: [venue]
    columns:
      - { name: high, function: max, column: price }
`

// qiflow runs the binary to its end and returns its output and exit code.
func qiflow(t *testing.T, bin, dsn string, args ...string) (string, int) {
	t.Helper()
	p := testenv.StartProcess(t, bin, []string{"DATABASE_URL=" + dsn}, args...)
	code, err := p.Wait(time.Minute)
	require.NoError(t, err)
	return p.Output(), code
}

// TestASecondSpecInPublicPlansNoDropOfTheShippedAggregates runs `qiflow
// schema` as a user does: the shipped spec, then a second spec in the same
// schema, whose plan and apply touch only its own objects.
func TestASecondSpecInPublicPlansNoDropOfTheShippedAggregates(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	testenv.RequireTimescale(t, testenv.Database(t))
	dsn := testenv.Database(t)
	out, code := qiflow(t, bin, dsn, "schema", "apply", "-f", shippedSpec)
	require.Equal(t, 0, code, out)
	trades := writeSpec(t, "trades.yaml", tradesSpec)

	out, code = qiflow(t, bin, dsn, "schema", "plan", "-f", trades, "--detailed-exitcode")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "Not managed by spec \"trades\", left alone: 8 object(s) in schema public (8 owned by spec \"schema\")\n")
	assert.Contains(t, out, "1. create table trades\n")
	assert.Contains(t, out, "3. create continuous aggregate trades_1h: 1 hour buckets of trades\n")
	assert.Contains(t, out, "\n3 change(s), 0 destructive.\n")
	assert.NotContains(t, out, "DROP")
	assert.NotContains(t, out, "[DESTRUCTIVE]")

	out, code = qiflow(t, bin, dsn, "schema", "apply", "-f", trades)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "Not managed by spec \"trades\", left alone: 8 object(s) in schema public (8 owned by spec \"schema\")\n")
	assert.Contains(t, out, "apply complete: 3 change(s)\n")

	out, code = qiflow(t, bin, dsn, "schema", "plan", "-f", shippedSpec, "--detailed-exitcode")
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "Not managed by spec \"schema\", left alone: 2 object(s) in schema public (2 owned by spec \"trades\")\nNo changes: the database matches the spec.\n")

	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var aggregates int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'public'").Scan(&aggregates))
	assert.Equal(t, 5+1, aggregates, "the shipped aggregates and the second spec's")
}
