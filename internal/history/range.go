// Package history reads rows of a table back out, in time order, for a
// time range: the shared range reader of the `timescale` input, `qiflow
// replay` and read-only tools.
//
// A Reader pages through the range by keyset on (time column, key
// columns): each page is one query that starts strictly after the last row
// of the page before, so the range is never held in memory, a page costs
// an index range scan whatever its depth, and a Position saved after any
// row resumes the read with that row's successor, neither repeating nor
// skipping one. Each row comes out as one wire-format JSON object
// (docs/wire-format.md): camelCase keys, exact decimals as strings,
// timestamps in RFC 3339.
//
// Identifiers are quoted with pgx.Identifier, and every value, the
// filter's included, is a query parameter; nothing a caller passes is
// spliced into SQL as a value.
package history

import (
	"errors"
	"fmt"
	"time"
)

// DefaultPageSize is the rows per page when Range.PageSize is zero: big
// enough that the per-query cost is noise, small enough that a page of
// wire messages stays a few megabytes.
const DefaultPageSize = 10000

// Range is what to read: a table, its columns and a [From, To) time range.
type Range struct {
	// Table is the table or hypertable, optionally schema-qualified
	// ("public.crypto_prices").
	Table string
	// Columns are emitted, in order, as the keys of each message. Empty
	// means every column of the table.
	Columns []string
	// TimeColumn orders the read. Empty means the hypertable's time
	// dimension, or else the first timestamptz column of the primary key.
	TimeColumn string
	// KeyColumns make (TimeColumn, KeyColumns) unique, so that pages can
	// resume between rows of one timestamp. They must be NOT NULL. Empty
	// means the primary key without the time column.
	KeyColumns []string
	// From and To bound the time column: From <= t < To. A zero From means
	// no lower bound, a zero To no upper bound.
	From, To time.Time
	// Match keeps only rows whose columns equal the given values, e.g. one
	// series: {coin_id: bitcoin, exchange_id: binance}.
	Match []Match
	// Where is an extra SQL condition on the table's columns, written by
	// the operator, with $1, $2, ... standing for Args. Values belong in
	// Args, never in Where.
	Where string
	// Args are the parameters of Where, as typed Go values or strings
	// that PostgreSQL casts to the compared column's type.
	Args []any
	// After resumes the read after this position (a row's Position). Nil
	// starts at From.
	After *Position
	// Limit stops the read after this many rows; zero means no limit.
	Limit int64
	// PageSize is the rows per query; zero means DefaultPageSize.
	PageSize int
}

// Match is one equality filter: Column = Value.
type Match struct {
	Column string
	Value  any
}

// Position is where a read stands: the time and the key columns' values,
// as text, of the last row read. A Reader started After a Position reads
// the rows strictly after it in (time, keys) order.
type Position struct {
	Time time.Time `json:"time"`
	Key  []string  `json:"key"`
}

// ErrNoKey is returned when the table has no primary key and no key
// columns were given: then rows of one timestamp cannot be told apart, and
// a page boundary between them could not be resumed.
var ErrNoKey = errors.New("the table has no primary key: set the key columns, which together with the time column must be unique")

func (r Range) validate() error {
	if r.Table == "" {
		return errors.New("history: no table")
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return fmt.Errorf("history: empty range: from %s is not before to %s", r.From.Format(time.RFC3339Nano), r.To.Format(time.RFC3339Nano))
	}
	if r.Limit < 0 || r.PageSize < 0 {
		return errors.New("history: limit and page size must not be negative")
	}
	return nil
}
