package schema_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/schema"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// shippedSpec is the spec the pipelines use.
const shippedSpec = "../../pipelines/schema.yaml"

func TestShippedSpecHoldsTheContractTables(t *testing.T) {
	spec, err := schema.Load(shippedSpec)
	require.NoError(t, err)

	prices := spec.Table("crypto_prices")
	require.NotNil(t, prices)
	assert.Equal(t, []string{"last_updated", "coin_id", "exchange_id"}, prices.PrimaryKey)
	assert.Equal(t, "numeric(20,8)", prices.Column("usd_price").Type)
	assert.Equal(t, "now()", prices.Column("ingested_at").Default)
	assert.False(t, prices.Column("market_cap").NotNull)
	assert.Equal(t, "last_updated", prices.Hypertable.TimeColumn)

	ohlcv := spec.Table("crypto_ohlcv")
	require.NotNil(t, ohlcv)
	assert.Equal(t, []string{"timestamp", "coin_id", "exchange_id", "timeframe"}, ohlcv.PrimaryKey)
	assert.Equal(t, "numeric(28,8)", ohlcv.Column("volume").Type)

	analytics := spec.Table("crypto_market_analytics")
	require.NotNil(t, analytics)
	assert.Equal(t, []string{"timestamp", "exchange_id"}, analytics.PrimaryKey)
	assert.Equal(t, "'global'", analytics.Column("exchange_id").Default)
	assert.Equal(t, "integer", analytics.Column("markets").Type)

	var names []string
	for _, ca := range spec.ContinuousAggregates {
		names = append(names, ca.Name)
	}
	assert.Equal(t, []string{"crypto_prices_1m", "crypto_prices_1h", "crypto_prices_1d", "crypto_ohlcv_1h", "crypto_ohlcv_1d"}, names)
}

func TestIntervals(t *testing.T) {
	for in, want := range map[string]string{
		"1 day":          "1 day",
		"7 days":         "7 days",
		"90 minutes":     "90 minutes",
		"1 day 12 hours": "1 day 12 hours",
		"2 weeks":        "14 days",
		"1 year":         "1 year",
		"30s":            "",
		"":               "",
		"1 fortnight":    "",
		"0 days":         "",
		"1 day; DROP":    "",
	} {
		iv, err := schema.ParseInterval(in)
		if want == "" {
			assert.Error(t, err, in)
			continue
		}
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, iv.String(), in)
		}
	}
}

// minimal is a valid spec that the bad-spec cases break one line at a time.
const minimal = `version: 1
tables:
  - name: ticks
    columns:
      - { name: ts, type: timestamptz, not_null: true }
      - { name: coin, type: varchar(64), not_null: true }
      - { name: price, type: "numeric(20,8)" }
    primary_key: [ts, coin]
    hypertable:
      time_column: ts
      chunk_interval: 1 day
      columnstore:
        segmentby: [coin]
        orderby: [ts DESC]
        after: 7 days
`

func TestMinimalSpecParses(t *testing.T) {
	spec, err := schema.Parse("minimal.yaml", []byte(minimal))
	require.NoError(t, err)
	assert.Equal(t, "public", spec.Schema)
	assert.Equal(t, "7 days", spec.Tables[0].Hypertable.Columnstore.After.String())
}

func TestBadSpecsNameFileLineAndReason(t *testing.T) {
	cases := []struct {
		name string
		old  string
		new  string
		want string // "line: reason" fragment
	}{
		{"unknown key", "    primary_key: [ts, coin]", "    primary_key: [ts, coin]\n    partitions: 4", `bad.yaml:9: table: unknown key "partitions"`},
		{"bad interval", "chunk_interval: 1 day", "chunk_interval: 1 fortnight", `bad.yaml:11: chunk_interval: bad interval "1 fortnight": unknown unit "fortnight"`},
		{"missing time column", "      time_column: ts\n", "", "bad.yaml:9: ticks hypertable: time_column is required"},
		{"time column not a column", "time_column: ts", "time_column: when", `bad.yaml:10: table ticks: hypertable time_column "when" is not a column of the table`},
		{"segmentby on an unknown column", "segmentby: [coin]", "segmentby: [coin, venue]", `bad.yaml:13: table ticks: columnstore segmentby names unknown column "venue"`},
		{"bad type", `type: "numeric(20,8)"`, "type: money", `bad.yaml:7: column price: unsupported column type "money"`},
		{"SQL in a type", `type: "numeric(20,8)"`, `type: "text); DROP TABLE x; --"`, `bad.yaml:7: column price: unsupported column type`},
		{"bad name", "name: coin,", "name: Coin,", `bad.yaml:6: column name "Coin" must be a lower-case SQL name`},
		{"removed feature", "      chunk_interval: 1 day", "      chunk_interval: 1 day\n      distributed: true", "bad.yaml:12: ticks hypertable: distributed is not supported: distributed hypertables were removed in TimescaleDB 2.14"},
		{"broken YAML", "    primary_key: [ts, coin]", "    primary_key: [ts, coin", "bad.yaml:"},
		{"months in chunk interval", "chunk_interval: 1 day", "chunk_interval: 1 month", "bad.yaml:11: chunk_interval must be in fixed units"},
		{"primary key without time column", "primary_key: [ts, coin]", "primary_key: [coin]", "bad.yaml:8: table ticks: the primary key must include the hypertable time_column ts"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(minimal, tc.old, tc.new, 1)
			require.NotEqual(t, minimal, data, "case does not change the spec")
			_, err := schema.Parse("bad.yaml", []byte(data))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.True(t, errors.Is(err, schema.ErrInvalidSpec), "a bad spec is ErrInvalidSpec")
			assert.Equal(t, result.Stop, result.ActionOf(err), "a bad spec stops, it is never retried")
		})
	}
}

func TestEveryProblemOfAFileIsReported(t *testing.T) {
	data := strings.Replace(minimal, `type: "numeric(20,8)"`, "type: money", 1)
	data = strings.Replace(data, "after: 7 days", "after: soon", 1)
	_, err := schema.Parse("bad.yaml", []byte(data))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.yaml:7:")
	assert.Contains(t, err.Error(), "bad.yaml:15:")
}

func TestLoadNamesTheFile(t *testing.T) {
	path := t.TempDir() + "/schema.yaml"
	require.NoError(t, os.WriteFile(path, []byte(strings.Replace(minimal, "version: 1", "version: 1\nextra: x", 1)), 0o644))
	_, err := schema.Load(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+`:2: spec: unknown key "extra"`)
}
