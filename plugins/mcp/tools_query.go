package mcp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qicore/qiflow/internal/schema"
)

// Bounds of query_range: rows per call, and how long its query may run.
const (
	defaultQueryRows = 100
	maxQueryRows     = 1000
	queryTimeout     = 15 * time.Second
)

// seriesColumns are the columns query_range filters one series by.
const (
	columnCoin      = "coin_id"
	columnExchange  = "exchange_id"
	columnTimeframe = "timeframe"
)

type queryRangeIn struct {
	Table      string   `json:"table" jsonschema:"a hypertable of schema.yaml: crypto_prices, crypto_ohlcv or crypto_market_analytics"`
	From       string   `json:"from" jsonschema:"start of the range, RFC 3339 (inclusive), e.g. 2026-12-04T10:00:00Z"`
	To         string   `json:"to" jsonschema:"end of the range, RFC 3339 (exclusive)"`
	CoinID     string   `json:"coin_id,omitempty" jsonschema:"one coin, e.g. bitcoin; default all"`
	ExchangeID string   `json:"exchange_id,omitempty" jsonschema:"one exchange, e.g. binance; default all"`
	Timeframe  string   `json:"timeframe,omitempty" jsonschema:"crypto_ohlcv only: one timeframe (1m 5m 15m 1h 4h 1d 1w); default all"`
	Columns    []string `json:"columns,omitempty" jsonschema:"columns to return, from the table's columns in schema.yaml; default all"`
	Limit      int      `json:"limit,omitempty" jsonschema:"rows to return; default 100, at most 1000"`
	Descending bool     `json:"descending,omitempty" jsonschema:"newest first; default oldest first"`
}

type queryRangeOut struct {
	Table      string               `json:"table"`
	TimeColumn string               `json:"time_column"`
	Columns    []string             `json:"columns"`
	Rows       []map[string]*string `json:"rows" jsonschema:"one object per row, column to value as PostgreSQL prints it (exact decimals, UTC timestamps); null for NULL"`
	Limit      int                  `json:"limit"`
	Truncated  bool                 `json:"truncated" jsonschema:"more rows are in the range than were returned: narrow the range, or continue from the last row's time"`
}

func (tb *toolbox) registerQueryTools(srv *mcp.Server) {
	addTool(tb, srv, &mcp.Tool{
		Name:        "query_range",
		Title:       "Rows of a hypertable in a time range",
		Description: "Read-only: the rows of one of schema.yaml's hypertables (crypto_prices, crypto_ohlcv, crypto_market_analytics) with their time column in [from, to), for one series (coin_id, exchange_id, timeframe) or all, oldest first, at most 1000 rows per call. Table and column names come only from schema.yaml; values are typed parameters. Example: what did bitcoin do on binance between 10:00 and 10:05 → table crypto_prices, coin_id bitcoin, exchange_id binance, from 2026-12-04T10:00:00Z, to 2026-12-04T10:05:00Z.",
		Annotations: readOnly,
	}, tb.queryRange)
}

// rangeQuery is a checked query_range request: identifiers from the spec,
// values as parameters.
type rangeQuery struct {
	table      *schema.Table
	schemaName string
	timeColumn string
	columns    []string
	where      []string
	args       []any
	limit      int
	descending bool
}

// checkRange validates in against spec; every refusal names what is
// allowed.
func checkRange(spec *schema.Spec, in queryRangeIn) (*rangeQuery, error) {
	var tables []string
	for _, t := range spec.Tables {
		if t.Hypertable != nil {
			tables = append(tables, t.Name)
		}
	}
	t := spec.Table(in.Table)
	if t == nil || t.Hypertable == nil {
		return nil, fmt.Errorf("table %q is not a hypertable of %s: choose one of %s", in.Table, spec.File, strings.Join(tables, ", "))
	}
	limit, err := bounded("limit", in.Limit, defaultQueryRows, maxQueryRows)
	if err != nil {
		return nil, err
	}
	from, err := time.Parse(time.RFC3339Nano, in.From)
	if err != nil {
		return nil, fmt.Errorf("from %q: want an RFC 3339 time such as 2026-12-04T10:00:00Z", in.From)
	}
	to, err := time.Parse(time.RFC3339Nano, in.To)
	if err != nil {
		return nil, fmt.Errorf("to %q: want an RFC 3339 time such as 2026-12-04T10:05:00Z", in.To)
	}
	if !from.Before(to) {
		return nil, fmt.Errorf("from %s is not before to %s", in.From, in.To)
	}
	q := &rangeQuery{table: t, schemaName: spec.Schema, timeColumn: t.Hypertable.TimeColumn, limit: limit, descending: in.Descending}
	names := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		names[i] = c.Name
	}
	q.columns = names
	if len(in.Columns) > 0 {
		q.columns = nil
		for _, c := range in.Columns {
			if !slices.Contains(names, c) {
				return nil, fmt.Errorf("column %q is not a column of %s: choose from %s", c, t.Name, strings.Join(names, ", "))
			}
			if !slices.Contains(q.columns, c) {
				q.columns = append(q.columns, c)
			}
		}
	}
	q.where = append(q.where, quoteIdent(q.timeColumn)+" >= $1", quoteIdent(q.timeColumn)+" < $2")
	q.args = append(q.args, from, to)
	for _, f := range []struct{ column, value string }{{columnCoin, in.CoinID}, {columnExchange, in.ExchangeID}, {columnTimeframe, in.Timeframe}} {
		if f.value == "" {
			continue
		}
		if t.Column(f.column) == nil {
			return nil, fmt.Errorf("%s has no column %s to filter by", t.Name, f.column)
		}
		q.args = append(q.args, f.value)
		q.where = append(q.where, fmt.Sprintf("%s = $%d", quoteIdent(f.column), len(q.args)))
	}
	return q, nil
}

// sql renders the query; every identifier comes from the spec, quoted.
func (q *rangeQuery) sql() string {
	selects := make([]string, len(q.columns))
	for i, c := range q.columns {
		selects[i] = quoteIdent(c) + "::text"
	}
	order := "ASC"
	if q.descending {
		order = "DESC"
	}
	return fmt.Sprintf("SELECT %s FROM %s WHERE %s ORDER BY %s %s LIMIT %d",
		strings.Join(selects, ", "), pgx.Identifier{q.schemaName, q.table.Name}.Sanitize(),
		strings.Join(q.where, " AND "), quoteIdent(q.timeColumn), order, q.limit+1)
}

func quoteIdent(name string) string { return pgx.Identifier{name}.Sanitize() }

func (tb *toolbox) queryRange(ctx context.Context, in queryRangeIn) (queryRangeOut, error) {
	spec, err := tb.spec()
	if err != nil {
		return queryRangeOut{}, err
	}
	q, err := checkRange(spec, in)
	if err != nil {
		return queryRangeOut{}, err
	}
	pool, err := tb.conns.database(ctx)
	if err != nil {
		return queryRangeOut{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	out := queryRangeOut{Table: q.table.Name, TimeColumn: q.timeColumn, Columns: q.columns, Rows: []map[string]*string{}, Limit: q.limit}
	// A read-only transaction: whatever the query were, it could not write.
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", queryTimeout.Milliseconds())); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, q.sql(), q.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if len(out.Rows) == q.limit {
				out.Truncated = true
				break
			}
			values := make([]*string, len(q.columns))
			dest := make([]any, len(values))
			for i := range values {
				dest[i] = &values[i]
			}
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			row := make(map[string]*string, len(values))
			for i, c := range q.columns {
				row[c] = values[i]
			}
			out.Rows = append(out.Rows, row)
		}
		return rows.Err()
	})
	if err != nil {
		return queryRangeOut{}, fmt.Errorf("query %s: %w", q.table.Name, err)
	}
	return out, nil
}
