package schema_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/schema"
)

// tradesSpec is a second spec in public, beside the shipped one, with a
// table and an aggregate of its own. Its name comes from its file:
// "trades".
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

func parse(t *testing.T, file, text string) *schema.Spec {
	t.Helper()
	spec, err := schema.Parse(file, []byte(text))
	require.NoError(t, err)
	return spec
}

// aggregates returns the names of the continuous aggregates in public.
func aggregates(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT view_name::text FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'public' ORDER BY 1")
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

var shippedAggregates = []string{"crypto_ohlcv_1d", "crypto_ohlcv_1h", "crypto_prices_1d", "crypto_prices_1h", "crypto_prices_1m"}

// shippedObjects are the tables and aggregates of the shipped spec, as a
// plan of another spec lists them, owned by owner.
func shippedObjects(owner string) []schema.Object {
	out := []schema.Object{
		{Kind: schema.ObjectKindTable, Name: "crypto_market_analytics", Owner: owner},
		{Kind: schema.ObjectKindTable, Name: "crypto_ohlcv", Owner: owner},
		{Kind: schema.ObjectKindTable, Name: "crypto_prices", Owner: owner},
	}
	for _, a := range shippedAggregates {
		out = append(out, schema.Object{Kind: schema.ObjectKindContinuousAggregate, Name: a, Owner: owner})
	}
	return out
}

func TestASpecsNameIsItsNameKeyOrItsFileName(t *testing.T) {
	assert.Equal(t, "schema", shipped(t).Name)
	assert.Equal(t, "schema", parse(t, "/setup/schema.yaml", tradesSpec).Name, "the same file deployed elsewhere is the same spec")
	assert.Equal(t, "prices_exactly_once.schema", parse(t, "pipelines/examples/prices_exactly_once.schema.yaml", tradesSpec).Name)
	assert.Equal(t, "market_data", parse(t, "any.yaml", "name: market_data\n"+tradesSpec).Name)

	_, err := schema.Parse("bad.yaml", []byte("name: Market Data\n"+tradesSpec))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `bad.yaml:1: name "Market Data" must be lower-case letters, digits, _, . and -`)
}

// A second spec in the schema of the shipped one plans to create its own
// objects and nothing else: no drop of the shipped aggregates. Applying it
// leaves them, and each spec's plan is then empty.
func TestASecondSpecInTheSameSchemaLeavesTheFirstSpecsObjectsAlone(t *testing.T) {
	conn := connect(t, timescaleDatabase(t))
	apply(t, conn, shipped(t), schema.ApplyOptions{})
	trades := parse(t, "other/trades.yaml", tradesSpec)

	p := plan(t, conn, trades)
	assert.Equal(t, []string{
		"create table trades",
		"make trades a hypertable on at with chunks of 1 day",
		"create continuous aggregate trades_1h: 1 hour buckets of trades",
	}, descriptions(p.Steps))
	assert.Empty(t, p.Destructive())
	assert.ElementsMatch(t, shippedObjects("schema"), p.Unmanaged)
	assert.Contains(t, p.String(), "Not managed by spec \"trades\", left alone: 8 object(s) in schema public (8 owned by spec \"schema\")\n")

	apply(t, conn, trades, schema.ApplyOptions{})
	assert.Equal(t, append(slices.Clone(shippedAggregates), "trades_1h"), aggregates(t, conn))
	assert.True(t, plan(t, conn, trades).Empty())
	back := plan(t, conn, shipped(t))
	assert.True(t, back.Empty(), "the shipped spec leaves the other spec's objects alone: %s", back)
	assert.ElementsMatch(t, []schema.Object{
		{Kind: schema.ObjectKindTable, Name: "trades", Owner: "trades"},
		{Kind: schema.ObjectKindContinuousAggregate, Name: "trades_1h", Owner: "trades"},
	}, back.Unmanaged)
}

// Objects made by a qiflow that wrote no owner are nobody's: another spec
// leaves them alone, and the spec that declares them adopts them, with
// steps that only write comments.
func TestObjectsOfAnOlderQiflowAreAdoptedByTheSpecThatDeclaresThem(t *testing.T) {
	conn := connect(t, timescaleDatabase(t))
	ctx := context.Background()
	apply(t, conn, shipped(t), schema.ApplyOptions{})
	// What qiflow wrote before ownership records: no table comment, and
	// "qiflow sha256:…" on aggregates. One table has a comment by hand.
	_, err := conn.Exec(ctx, `DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
    EXECUTE format('COMMENT ON TABLE public.%I IS NULL', r.tablename);
  END LOOP;
  FOR r IN SELECT view_name, obj_description(format('public.%I', view_name)::regclass, 'pg_class') AS c
           FROM timescaledb_information.continuous_aggregates LOOP
    EXECUTE format('COMMENT ON VIEW public.%I IS %L', r.view_name, regexp_replace(r.c, ' spec=\S+', ''));
  END LOOP;
END $$;
COMMENT ON TABLE crypto_market_analytics IS 'market totals'`)
	require.NoError(t, err)

	other := plan(t, conn, parse(t, "trades.yaml", tradesSpec))
	assert.Empty(t, other.Destructive(), "%s", other)
	assert.ElementsMatch(t, shippedObjects(""), other.Unmanaged)
	assert.Contains(t, other.String(), "left alone: 8 object(s) in schema public (8 with no owner)\n")

	// An aggregate an older qiflow made and the spec no longer declares
	// has no owner either: it is not dropped.
	withoutDaily := edited(t, "  - name: crypto_prices_1d\n", "  - name: crypto_prices_daily\n")
	p := plan(t, conn, withoutDaily)
	assert.NotContains(t, descriptions(p.Steps), "drop continuous aggregate crypto_prices_1d (not in the spec)")
	assert.Contains(t, p.Unmanaged, schema.Object{Kind: schema.ObjectKindContinuousAggregate, Name: "crypto_prices_1d"})

	p = plan(t, conn, shipped(t))
	want := []string{
		`adopt table crypto_prices into spec "schema" (record the owner in its comment)`,
		`adopt table crypto_ohlcv into spec "schema" (record the owner in its comment)`,
		`adopt table crypto_market_analytics into spec "schema" (record the owner in its comment); replaces the comment "market totals"`,
	}
	for _, a := range []string{"crypto_prices_1m", "crypto_prices_1h", "crypto_prices_1d", "crypto_ohlcv_1h", "crypto_ohlcv_1d"} {
		want = append(want, `adopt continuous aggregate `+a+` into spec "schema" (record the owner in its comment)`)
	}
	assert.Equal(t, want, descriptions(p.Steps))
	assert.Empty(t, p.Destructive())
	for _, s := range p.Steps {
		assert.True(t, strings.HasPrefix(s.SQL, "COMMENT ON "), s.SQL)
	}

	apply(t, conn, shipped(t), schema.ApplyOptions{})
	assert.True(t, plan(t, conn, shipped(t)).Empty())
	assert.Equal(t, shippedAggregates, aggregates(t, conn))
}

// A spec that declares another spec's table is refused before anything
// runs: two specs never manage one object.
func TestASpecDeclaringAnotherSpecsTableIsRefused(t *testing.T) {
	dsn, _ := freshDatabase(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	apply(t, conn, shipped(t), schema.ApplyOptions{})
	copied := parse(t, "copy.yaml", `tables:
  - name: crypto_prices
    columns:
      - { name: last_updated, type: timestamptz, not_null: true }
`)
	want := `copy.yaml (spec "copy"): table crypto_prices belongs to spec "schema"; a spec manages only its own objects`

	_, err := schema.Plan(ctx, conn, copied)
	require.Error(t, err)
	assert.True(t, errors.Is(err, schema.ErrOwnedByAnotherSpec))
	assert.Equal(t, result.Stop, result.ActionOf(err))
	assert.Contains(t, err.Error(), want)

	_, err = schema.Apply(ctx, conn, copied, schema.ApplyOptions{AllowDestructive: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), want)
	assert.True(t, plan(t, conn, shipped(t)).Empty(), "nothing ran: the columns the copy lacks are still there")

	// The same spec under another file name says so with its name key.
	same := parse(t, "copy.yaml", "name: schema\n"+string(must(os.ReadFile(shippedSpec))))
	assert.True(t, plan(t, conn, same).Empty())
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A spec in a schema the database does not have creates it first.
func TestASpecInASchemaThatDoesNotExistCreatesIt(t *testing.T) {
	dsn, timescale := freshDatabase(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	spec := parse(t, "nc.yaml", strings.Replace(tradesSpec, "schema: public", "schema: nc", 1))

	p := plan(t, conn, spec)
	require.NotEmpty(t, p.Steps)
	assert.Equal(t, schema.Step{Description: "create schema nc", SQL: `CREATE SCHEMA IF NOT EXISTS "nc"`}, p.Steps[0])

	apply(t, conn, spec, schema.ApplyOptions{})
	var table bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass('nc.trades') IS NOT NULL").Scan(&table))
	assert.True(t, table)
	if timescale {
		var hypertables, aggs int
		require.NoError(t, conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = 'nc'),
			(SELECT count(*) FROM timescaledb_information.continuous_aggregates WHERE view_schema = 'nc')`).Scan(&hypertables, &aggs))
		assert.Equal(t, 1, hypertables)
		assert.Equal(t, 1, aggs)
	}
	assert.True(t, plan(t, conn, spec).Empty())
}

// Ownership still drives drops of the spec's own objects: a table removed
// from the spec takes its aggregates with it (destructive, as before), and
// the table itself stays, with a warning, since qiflow never drops a
// table.
func TestRemovingATableFromTheSpecDropsTheAggregatesItOwnsAndKeepsTheTable(t *testing.T) {
	conn := connect(t, timescaleDatabase(t))
	ctx := context.Background()
	apply(t, conn, shipped(t), schema.ApplyOptions{})
	text := string(must(os.ReadFile(shippedSpec)))
	text = text[:strings.Index(text, "  - name: crypto_ohlcv\n")] + text[strings.Index(text, "  - name: crypto_market_analytics\n"):]
	text = text[:strings.Index(text, "  # Candle rollups")]
	spec := parse(t, "edited/schema.yaml", text)

	p := plan(t, conn, spec)
	want := []string{"drop continuous aggregate crypto_ohlcv_1d (not in the spec)", "drop continuous aggregate crypto_ohlcv_1h (not in the spec)"}
	assert.Equal(t, want, descriptions(p.Steps))
	assert.Equal(t, want, descriptions(p.Destructive()))
	assert.Empty(t, p.Unmanaged)
	warning := `table crypto_ohlcv belongs to spec "schema" but is no longer in it; qiflow never drops a table: drop it by hand (DROP TABLE "public"."crypto_ohlcv") or add it back`
	assert.Contains(t, p.Warnings, warning)

	_, err := schema.Apply(ctx, conn, spec, schema.ApplyOptions{})
	assert.True(t, errors.Is(err, schema.ErrDestructiveRefused))
	apply(t, conn, spec, schema.ApplyOptions{AllowDestructive: true})
	assert.Equal(t, []string{"crypto_prices_1d", "crypto_prices_1h", "crypto_prices_1m"}, aggregates(t, conn))
	var table bool
	require.NoError(t, conn.QueryRow(ctx, "SELECT to_regclass('public.crypto_ohlcv') IS NOT NULL").Scan(&table))
	assert.True(t, table, "the table stays")
	p = plan(t, conn, spec)
	assert.True(t, p.Empty())
	assert.Contains(t, p.Warnings, warning)
}
