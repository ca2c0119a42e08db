package schema_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/schema"
	"github.com/qicore/qiflow/internal/testenv"
)

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func shipped(t *testing.T) *schema.Spec {
	t.Helper()
	spec, err := schema.Load(shippedSpec)
	require.NoError(t, err)
	return spec
}

// edited returns the shipped spec with old replaced by new. It keeps the
// file's base name, and so the spec's name: it is the same spec, edited.
func edited(t *testing.T, old, new string) *schema.Spec {
	t.Helper()
	data, err := os.ReadFile(shippedSpec)
	require.NoError(t, err)
	text := strings.Replace(string(data), old, new, 1)
	require.NotEqual(t, string(data), text, "the edit must change the spec")
	spec, err := schema.Parse("edited/schema.yaml", []byte(text))
	require.NoError(t, err)
	return spec
}

func apply(t *testing.T, conn *pgx.Conn, spec *schema.Spec, opts schema.ApplyOptions) *schema.ApplyReport {
	t.Helper()
	opts.Log = func(s string) { t.Log(s) }
	rep, err := schema.Apply(context.Background(), conn, spec, opts)
	require.NoError(t, err)
	return rep
}

func plan(t *testing.T, conn *pgx.Conn, spec *schema.Spec) *schema.PlanResult {
	t.Helper()
	p, err := schema.Plan(context.Background(), conn, spec)
	require.NoError(t, err)
	return p
}

func descriptions(steps []schema.Step) []string {
	out := make([]string, len(steps))
	for i, s := range steps {
		out[i] = s.Description
	}
	return out
}

// freshDatabase returns a new database and whether TimescaleDB is usable
// on the cluster, probed in another database so that this one starts
// without the extension, as a user's does.
func freshDatabase(t *testing.T) (string, bool) {
	t.Helper()
	return testenv.Database(t), testenv.TimescaleAvailable(t, testenv.Database(t))
}

// timescaleDatabase is freshDatabase for tests that need TimescaleDB: they
// skip without it, or fail with QIFLOW_REQUIRE_TIMESCALEDB=1.
func timescaleDatabase(t *testing.T) string {
	t.Helper()
	testenv.RequireTimescale(t, testenv.Database(t))
	return testenv.Database(t)
}

// databaseFor is timescaleDatabase for a case that needs TimescaleDB and
// freshDatabase otherwise.
func databaseFor(t *testing.T, timescale bool) string {
	t.Helper()
	if timescale {
		return timescaleDatabase(t)
	}
	dsn, _ := freshDatabase(t)
	return dsn
}

func TestApplyToAnEmptyDatabaseCreatesEverythingAndASecondApplyChangesNothing(t *testing.T) {
	dsn, timescale := freshDatabase(t)
	conn := connect(t, dsn)
	spec := shipped(t)

	first := apply(t, conn, spec, schema.ApplyOptions{})
	assert.NotEmpty(t, first.Applied)

	for _, table := range []string{"crypto_prices", "crypto_ohlcv", "crypto_market_analytics"} {
		var exists bool
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
		assert.True(t, exists, table)
	}
	if timescale {
		var ext, hypertables, aggregates, jobs int
		require.NoError(t, conn.QueryRow(context.Background(), `SELECT
			(SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'),
			(SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public'),
			(SELECT count(*) FROM timescaledb_information.continuous_aggregates),
			(SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL)`).Scan(&ext, &hypertables, &aggregates, &jobs))
		assert.Equal(t, 1, ext, "apply creates the timescaledb extension")
		assert.Equal(t, 3, hypertables)
		assert.Equal(t, 5, aggregates)
		assert.Equal(t, 3+3+5, jobs, "a columnstore and a retention policy per table, a refresh policy per aggregate")
		assert.Empty(t, first.Plan.Warnings)
	} else {
		require.Len(t, first.Plan.Warnings, 1, "one warning lists every skipped feature")
		w := first.Plan.Warnings[0]
		for _, skipped := range []string{"hypertable crypto_prices", "columnstore of crypto_ohlcv", "retention of crypto_market_analytics", "continuous aggregate crypto_prices_1m", "continuous aggregate crypto_ohlcv_1d"} {
			assert.Contains(t, w, skipped)
		}
	}

	second := apply(t, conn, spec, schema.ApplyOptions{})
	assert.Empty(t, second.Applied, "a second apply changes nothing")
	p := plan(t, conn, spec)
	assert.True(t, p.Empty(), "plan after apply: %s", p)
	assert.Contains(t, p.String(), "No changes")
}

func TestPlanRunsNothing(t *testing.T) {
	dsn, _ := freshDatabase(t)
	conn := connect(t, dsn)
	p := plan(t, conn, shipped(t))
	assert.False(t, p.Empty())
	var tables int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables))
	assert.Zero(t, tables)
	var ext int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").Scan(&ext))
	assert.Zero(t, ext)
}

// A change to the spec yields exactly that change, and applying it leaves
// nothing to do.
func TestASpecChangeYieldsExactlyThatChange(t *testing.T) {
	cases := []struct {
		name      string
		old, new  string
		timescale bool // needs TimescaleDB's community features
		reverse   bool // start from the edited spec and change to the shipped one
		want      []string
	}{
		{
			name: "add a column",
			old:  "      - { name: ingested_at,  type: timestamptz,   not_null: true, default: now() }\n    primary_key: [last_updated, coin_id, exchange_id]",
			new:  "      - { name: ingested_at,  type: timestamptz,   not_null: true, default: now() }\n      - { name: circulating_supply, type: \"numeric(28,8)\" }\n    primary_key: [last_updated, coin_id, exchange_id]",
			want: []string{"add column circulating_supply to crypto_prices"},
		},
		{
			name: "add an index",
			old:  "      - name: crypto_ohlcv_series_time_idx",
			new:  "      - name: crypto_ohlcv_exchange_time_idx\n        columns: [exchange_id, timestamp DESC]\n      - name: crypto_ohlcv_series_time_idx",
			want: []string{"create index crypto_ohlcv_exchange_time_idx on crypto_ohlcv"},
		},
		{
			name: "make a column nullable and give it a default",
			old:  "      - { name: source,       type: varchar(64),   not_null: true }",
			new:  "      - { name: source,       type: varchar(64),   default: coingecko }",
			want: []string{"drop not null on crypto_prices.source", "set default of crypto_prices.source to 'coingecko'"},
		},
		{
			name:      "change a retention policy",
			old:       "drop_after: 5 years",
			new:       "drop_after: 10 years",
			timescale: true,
			want:      []string{"change retention policy of crypto_market_analytics from 5 years to 10 years"},
		},
		{
			name:      "add a columnstore policy",
			old:       "        orderby: [timestamp DESC]\n        after: 14 days\n",
			new:       "        orderby: [timestamp DESC]\n",
			timescale: true,
			reverse:   true,
			want:      []string{"add columnstore policy to crypto_ohlcv: after 14 days"},
		},
		{
			name:      "remove a columnstore policy",
			old:       "        orderby: [timestamp DESC]\n        after: 14 days\n",
			new:       "        orderby: [timestamp DESC]\n",
			timescale: true,
			want:      []string{"remove columnstore policy of crypto_ohlcv (not in the spec)"},
		},
		{
			name:      "add an aggregate",
			old:       "  - name: crypto_ohlcv_1d\n",
			new:       "  - name: crypto_prices_5m\n    source: crypto_prices\n    bucket: 5 minutes\n    group_by: [coin_id]\n    columns:\n      - { name: high, function: max, column: usd_price }\n  - name: crypto_ohlcv_1d\n",
			timescale: true,
			want:      []string{"create continuous aggregate crypto_prices_5m: 5 minutes buckets of crypto_prices"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := connect(t, databaseFor(t, tc.timescale))
			from, spec := shipped(t), edited(t, tc.old, tc.new)
			if tc.reverse {
				from, spec = spec, from
			}
			apply(t, conn, from, schema.ApplyOptions{})

			p := plan(t, conn, spec)
			assert.Equal(t, tc.want, descriptions(p.Steps), "plan:\n%s", p)
			assert.Empty(t, p.Destructive())

			apply(t, conn, spec, schema.ApplyOptions{})
			assert.True(t, plan(t, conn, spec).Empty(), "nothing left to do after apply")
		})
	}
}

func TestDestructiveChangesAreRefusedWithoutTheFlag(t *testing.T) {
	cases := []struct {
		name      string
		old, new  string
		want      string
		timescale bool
	}{
		{"drop a column", "      - { name: change_7d,    type: \"numeric(10,4)\" }\n", "", "drop column change_7d of crypto_prices (not in the spec)", false},
		{"change a primary key", "primary_key: [timestamp, exchange_id]", "primary_key: [timestamp, exchange_id, source]", "drop primary key (timestamp, exchange_id) of crypto_market_analytics", false},
		{"narrow a column type", "{ name: symbol,       type: varchar(32)", "{ name: symbol,       type: varchar(16)", "change type of crypto_prices.symbol from character varying(32) to character varying(16)", false},
		{"shorten retention", "drop_after: 180 days", "drop_after: 90 days", "change retention policy of crypto_prices from 180 days to 90 days", true},
		{"redefine a continuous aggregate", "      - { name: ticks, function: count }\n    refresh: { start_offset: 1 hour", "      - { name: ticks, function: count }\n      - { name: mean, function: avg, column: usd_price }\n    refresh: { start_offset: 1 hour", "drop continuous aggregate crypto_prices_1m to re-create it with the spec's definition (its materialized rows are rebuilt from the source)", true},
		{"change the chunk interval of a table with rows", "chunk_interval: 1 day", "chunk_interval: 6 hours", "change chunk interval of crypto_prices to 6 hours (applies to new chunks)", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conn := connect(t, databaseFor(t, tc.timescale))
			ctx := context.Background()
			apply(t, conn, shipped(t), schema.ApplyOptions{})
			_, err := conn.Exec(ctx, `INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, source, attribution)
				VALUES (now(), 'bitcoin', 'BTC', 'binance', 67234.12345678, 'test', 'test')`)
			require.NoError(t, err)
			spec := edited(t, tc.old, tc.new)

			p := plan(t, conn, spec)
			assert.Contains(t, descriptions(p.Destructive()), tc.want, "plan marks it:\n%s", p)
			assert.Contains(t, p.String(), "[DESTRUCTIVE]")

			_, err = schema.Apply(ctx, conn, spec, schema.ApplyOptions{})
			require.Error(t, err)
			assert.True(t, errors.Is(err, schema.ErrDestructiveRefused))
			assert.Equal(t, result.Stop, result.ActionOf(err))
			assert.Contains(t, err.Error(), tc.want)
			assert.Equal(t, descriptions(p.Steps), descriptions(plan(t, conn, spec).Steps), "a refused apply changes nothing")

			apply(t, conn, spec, schema.ApplyOptions{AllowDestructive: true})
			assert.True(t, plan(t, conn, spec).Empty())
		})
	}
}

func TestConcurrentAppliesProduceOneSchema(t *testing.T) {
	dsn, _ := freshDatabase(t)
	spec := shipped(t)
	conns := []*pgx.Conn{connect(t, dsn), connect(t, dsn), connect(t, dsn)}
	var wg sync.WaitGroup
	reports := make([]*schema.ApplyReport, len(conns))
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i], errs[i] = schema.Apply(context.Background(), c, spec, schema.ApplyOptions{})
		}()
	}
	wg.Wait()
	applied := 0
	for i := range conns {
		require.NoError(t, errs[i])
		if len(reports[i].Applied) > 0 {
			applied++
		}
	}
	assert.Equal(t, 1, applied, "one instance applies, the others find nothing to do")
	assert.True(t, plan(t, conns[0], spec).Empty())
}

func TestPlainPostgresTablesTakeThePipelinesRows(t *testing.T) {
	dsn := testenv.Database(t)
	conn := connect(t, dsn)
	ctx := context.Background()
	apply(t, conn, shipped(t), schema.ApplyOptions{})

	_, err := conn.Exec(ctx, `INSERT INTO crypto_market_analytics
		(timestamp, total_market_cap, total_volume, btc_dominance, active_cryptocurrencies, markets, market_cap_change_24h, source, attribution)
		VALUES ('2024-01-01T00:00:00Z', 1.5e12, 5e10, 52.1234, 9000, 800, -1.25, 'coingecko', 'Data provided by CoinGecko')`)
	require.NoError(t, err)
	var exchange string
	var ingested time.Time
	require.NoError(t, conn.QueryRow(ctx, "SELECT exchange_id, ingested_at FROM crypto_market_analytics").Scan(&exchange, &ingested))
	assert.Equal(t, "global", exchange, "a row without exchangeId is stored as 'global'")
	assert.WithinDuration(t, time.Now(), ingested, time.Minute)

	_, err = conn.Exec(ctx, `INSERT INTO crypto_ohlcv (timestamp, coin_id, exchange_id, timeframe, open, high, low, close, volume, source, attribution)
		VALUES (now(), 'bitcoin', 'binance', '2h', 1, 1, 1, 1, 1, 's', 'a')`)
	require.Error(t, err, "the timeframe check holds")
	assert.Equal(t, result.Business, result.CategoryOf(err))
}

// Defaults written as quoted numbers or booleans, or as numbers for text
// columns, come back from the catalog in another spelling; a second plan
// must still be empty.
func TestDefaultsOfEveryKindAreIdempotent(t *testing.T) {
	dsn, _ := freshDatabase(t)
	conn := connect(t, dsn)
	spec, err := schema.Parse("defaults.yaml", []byte(`
tables:
  - name: defaults
    columns:
      - { name: id,       type: bigint,        not_null: true }
      - { name: quoted_n, type: integer,       default: "5" }
      - { name: plain_n,  type: integer,       default: -7 }
      - { name: money,    type: "numeric(10,2)", default: "-1.50" }
      - { name: text_n,   type: text,          default: "-3" }
      - { name: flag,     type: boolean,       default: "true" }
      - { name: label,    type: varchar(16),   default: global }
      - { name: at,       type: timestamptz,   default: now() }
    primary_key: [id]
`))
	require.NoError(t, err)
	apply(t, conn, spec, schema.ApplyOptions{})
	assert.True(t, plan(t, conn, spec).Empty(), "a second plan is empty: %v", descriptions(plan(t, conn, spec).Steps))
}

func TestSpecRejectsNumbersWithLeadingZerosAndEmptyNames(t *testing.T) {
	_, err := schema.Parse("bad.yaml", []byte(`
tables:
  - name: ""
    columns:
      - { name: n, type: integer, default: 007 }
    primary_key: [n]
`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.yaml:3:")
	assert.Contains(t, err.Error(), "leading zeros")
}

func TestAddingRetentionToATableWithRowsIsDestructive(t *testing.T) {
	conn := connect(t, timescaleDatabase(t))
	apply(t, conn, edited(t, "      retention:\n        # Raw ticks are kept 180 days; the rollups below keep history.\n        drop_after: 180 days\n", ""), schema.ApplyOptions{})
	_, err := conn.Exec(context.Background(), `INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, source, attribution)
VALUES (now() - interval '400 days', 'btc', 'BTC', 'binance', 1, 's', 'a')`)
	require.NoError(t, err)

	p := plan(t, conn, shipped(t))
	require.Len(t, p.Steps, 1, "%v", descriptions(p.Steps))
	assert.True(t, p.Steps[0].Destructive, "a retention policy would drop the year-old row: %s", p.Steps[0].Description)
}

func TestEmptyInListsAreSpecErrors(t *testing.T) {
	_, err := schema.Parse("in.yaml", []byte(`
tables:
  - name: t
    columns:
      - { name: tf, type: text, not_null: true }
    primary_key: [tf]
    checks:
      - { name: t_tf_check, column: tf, in: [] }
`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "in.yaml:8: check t_tf_check: in must list at least one value")
}
