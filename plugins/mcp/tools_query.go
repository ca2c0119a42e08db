package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qicore/qiflow/internal/history"
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
	Table      string            `json:"table" jsonschema:"a hypertable of schema.yaml: crypto_prices, crypto_ohlcv or crypto_market_analytics"`
	From       string            `json:"from" jsonschema:"start of the range, RFC 3339 (inclusive), e.g. 2026-12-04T10:00:00Z"`
	To         string            `json:"to" jsonschema:"end of the range, RFC 3339 (exclusive)"`
	CoinID     string            `json:"coin_id,omitempty" jsonschema:"one coin, e.g. bitcoin; default all"`
	ExchangeID string            `json:"exchange_id,omitempty" jsonschema:"one exchange, e.g. binance; default all"`
	Timeframe  string            `json:"timeframe,omitempty" jsonschema:"crypto_ohlcv only: one timeframe (1m 5m 15m 1h 4h 1d 1w); default all"`
	Columns    []string          `json:"columns,omitempty" jsonschema:"columns to return, by their names in schema.yaml (usd_price); default all"`
	Limit      int               `json:"limit,omitempty" jsonschema:"rows to return; default 100, at most 1000"`
	After      *history.Position `json:"after,omitempty" jsonschema:"continue after this position: the next of a truncated answer"`
}

type queryRangeOut struct {
	Table      string            `json:"table"`
	TimeColumn string            `json:"time_column"`
	Columns    []string          `json:"columns" jsonschema:"the columns returned, by their names in schema.yaml"`
	Rows       []map[string]any  `json:"rows" jsonschema:"oldest first, one wire-format object per row (docs/wire-format.md): camelCase keys, exact decimals as strings, RFC 3339 UTC times"`
	Limit      int               `json:"limit"`
	Truncated  bool              `json:"truncated" jsonschema:"more rows are in the range: call again with after set to next"`
	Next       *history.Position `json:"next,omitempty" jsonschema:"the position after the last row returned, when truncated"`
}

func (tb *toolbox) registerQueryTools(srv *mcp.Server) {
	addTool(tb, srv, &mcp.Tool{
		Name:        "query_range",
		Title:       "Rows of a hypertable in a time range",
		Description: "Read-only: the rows of one of schema.yaml's hypertables (crypto_prices, crypto_ohlcv, crypto_market_analytics) with their time column in [from, to), for one series (coin_id, exchange_id, timeframe) or all, oldest first, at most 1000 rows per call; a truncated answer gives next, to pass as after. Table and column names come only from schema.yaml; values are typed parameters. Example: what did bitcoin do on binance between 10:00 and 10:05 → table crypto_prices, coin_id bitcoin, exchange_id binance, from 2026-12-04T10:00:00Z, to 2026-12-04T10:05:00Z.",
		Annotations: readOnly,
	}, tb.queryRange)
}

// checkRange validates in against spec, every refusal naming what is
// allowed, and returns the read: identifiers only from the spec, values
// only as parameters (internal/history binds them).
func checkRange(spec *schema.Spec, in queryRangeIn) (history.Range, error) {
	var tables []string
	for _, t := range spec.Tables {
		if t.Hypertable != nil {
			tables = append(tables, t.Name)
		}
	}
	t := spec.Table(in.Table)
	if t == nil || t.Hypertable == nil {
		return history.Range{}, fmt.Errorf("table %q is not a hypertable of %s: choose one of %s", in.Table, spec.File, strings.Join(tables, ", "))
	}
	limit, err := bounded("limit", in.Limit, defaultQueryRows, maxQueryRows)
	if err != nil {
		return history.Range{}, err
	}
	from, err := time.Parse(time.RFC3339Nano, in.From)
	if err != nil {
		return history.Range{}, fmt.Errorf("from %q: want an RFC 3339 time such as 2026-12-04T10:00:00Z", in.From)
	}
	to, err := time.Parse(time.RFC3339Nano, in.To)
	if err != nil {
		return history.Range{}, fmt.Errorf("to %q: want an RFC 3339 time such as 2026-12-04T10:05:00Z", in.To)
	}
	if !from.Before(to) {
		return history.Range{}, fmt.Errorf("from %s is not before to %s", in.From, in.To)
	}
	r := history.Range{
		Table: spec.Schema + "." + t.Name, TimeColumn: t.Hypertable.TimeColumn,
		From: from, To: to, After: in.After,
		// One row more than asked for says whether the range holds more.
		Limit: int64(limit) + 1, PageSize: limit + 1,
	}
	for _, c := range in.Columns {
		if t.Column(c) == nil {
			names := make([]string, len(t.Columns))
			for i, col := range t.Columns {
				names[i] = col.Name
			}
			return history.Range{}, fmt.Errorf("column %q is not a column of %s: choose from %s", c, t.Name, strings.Join(names, ", "))
		}
		if !slices.Contains(r.Columns, c) {
			r.Columns = append(r.Columns, c)
		}
	}
	for _, f := range []struct{ column, value string }{{columnCoin, in.CoinID}, {columnExchange, in.ExchangeID}, {columnTimeframe, in.Timeframe}} {
		if f.value == "" {
			continue
		}
		if t.Column(f.column) == nil {
			return history.Range{}, fmt.Errorf("%s has no column %s to filter by", t.Name, f.column)
		}
		r.Match = append(r.Match, history.Match{Column: f.column, Value: f.value})
	}
	return r, nil
}

func (tb *toolbox) queryRange(ctx context.Context, in queryRangeIn) (queryRangeOut, error) {
	spec, err := tb.spec()
	if err != nil {
		return queryRangeOut{}, err
	}
	rng, err := checkRange(spec, in)
	if err != nil {
		return queryRangeOut{}, err
	}
	limit := int(rng.Limit) - 1
	pool, err := tb.conns.database(ctx)
	if err != nil {
		return queryRangeOut{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	out := queryRangeOut{Table: in.Table, Rows: []map[string]any{}, Limit: limit}
	// A read-only transaction: whatever the query were, it could not write.
	err = pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", queryTimeout.Milliseconds())); err != nil {
			return err
		}
		rd, err := history.NewReader(ctx, tx, rng)
		if err != nil {
			return err
		}
		out.TimeColumn, out.Columns = rd.TimeColumn(), rd.Columns()
		for {
			page, err := rd.Next(ctx)
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			for i := range page {
				if len(out.Rows) == limit {
					out.Truncated = true
					return nil
				}
				row, err := decodeRow(page[i].Message)
				if err != nil {
					return err
				}
				out.Rows = append(out.Rows, row)
				pos := page[i].Position()
				out.Next = &pos
			}
		}
	})
	if err != nil {
		return queryRangeOut{}, fmt.Errorf("query %s: %w", in.Table, err)
	}
	if !out.Truncated {
		out.Next = nil
	}
	return out, nil
}

// decodeRow reads a wire-format message, its numbers kept as written.
func decodeRow(msg []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(msg))
	dec.UseNumber()
	var row map[string]any
	if err := dec.Decode(&row); err != nil {
		return nil, fmt.Errorf("decode row: %w", err)
	}
	return row, nil
}
