package schema

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/qicore/qiflow/internal/result"
)

// Spec is a parsed and validated schema file: the single truth that Plan
// compares with a live database.
type Spec struct {
	// File is the name errors and reports use for the spec.
	File string
	// Name is the spec's identity, recorded in the comment of every table
	// and continuous aggregate it creates, so that specs sharing a
	// PostgreSQL schema each manage only their own objects: the file's
	// name key, or else its base name without extension ("schema" for
	// pipelines/schema.yaml).
	Name string
	// Schema is the PostgreSQL schema that holds every object; "public" by
	// default.
	Schema string
	// Tables in the order of the file, which is the order they are created.
	Tables []Table
	// ContinuousAggregates in the order of the file.
	ContinuousAggregates []ContinuousAggregate
}

// Table is one table and, when Hypertable is set, its TimescaleDB settings.
type Table struct {
	Name       string
	Columns    []Column
	PrimaryKey []string
	Checks     []Check
	Indexes    []Index
	// Hypertable is nil for a plain table.
	Hypertable *Hypertable
}

// Column is one column. Type and Default are in the canonical spelling of
// PostgreSQL's catalog (format_type and pg_get_expr without casts).
type Column struct {
	Name    string
	Type    string
	NotNull bool
	// Default is a SQL expression from a closed vocabulary (see
	// canonicalDefault), or "" for none.
	Default string
}

// Check is a CHECK constraint of the form column IN (values...).
type Check struct {
	Name   string
	Column string
	In     []string
}

// Index is a secondary b-tree index.
type Index struct {
	Name    string
	Columns []IndexColumn
	Unique  bool
}

// IndexColumn is one key column of an Index.
type IndexColumn struct {
	Name string
	Desc bool
}

// Hypertable holds a table's TimescaleDB settings.
type Hypertable struct {
	TimeColumn    string
	ChunkInterval Interval
	// Columnstore is nil when the table is never compressed.
	Columnstore *Columnstore
	// Retention is nil when chunks are kept forever.
	Retention *Retention
}

// Columnstore is a hypertable's columnstore (compression) settings and
// policy.
type Columnstore struct {
	SegmentBy []string
	OrderBy   []OrderColumn
	// After is the age at which the policy converts chunks; zero for no
	// policy (chunks are then compressed only by hand).
	After Interval
}

// OrderColumn is one column of a columnstore orderby.
type OrderColumn struct {
	Name       string
	Desc       bool
	NullsFirst bool
}

// String renders the column as in timescaledb.orderby.
func (o OrderColumn) String() string {
	s := o.Name
	if o.Desc {
		s += " DESC"
	}
	if o.NullsFirst != o.Desc { // PostgreSQL's default is NULLS FIRST for DESC only
		if o.NullsFirst {
			s += " NULLS FIRST"
		} else {
			s += " NULLS LAST"
		}
	}
	return s
}

// Retention is a hypertable's retention policy.
type Retention struct {
	DropAfter Interval
}

// ContinuousAggregate is a TimescaleDB continuous aggregate over one
// hypertable of the spec, bucketed by time_bucket on its time column into a
// column named "bucket".
type ContinuousAggregate struct {
	Name   string
	Source string
	Bucket Interval
	// GroupBy columns of the source, besides the bucket.
	GroupBy []string
	// Where, when set, keeps only source rows whose column is in a list.
	Where *Filter
	// Columns are the aggregates, in order.
	Columns []Aggregate
	// Refresh is nil when the aggregate is refreshed only by hand.
	Refresh *Refresh
	// Realtime makes queries combine materialized buckets with raw rows
	// newer than the last refresh (materialized_only = false).
	Realtime bool
}

// Filter keeps rows whose Column is one of In.
type Filter struct {
	Column string
	In     []string
}

// Aggregate is one aggregate column: Function applied to Column of the
// source. first and last order by the source's time column.
type Aggregate struct {
	Name     string
	Function string
	Column   string
}

// Refresh is a continuous aggregate's refresh policy.
type Refresh struct {
	StartOffset      Interval
	EndOffset        Interval
	ScheduleInterval Interval
}

// aggregateFunctions lists the functions an Aggregate may use.
var aggregateFunctions = []string{"first", "last", "min", "max", "sum", "avg", "count"}

// ErrInvalidSpec is the category and code of every spec error: a SYSTEM
// error that stops, since no retry can fix a file. Match it with errors.Is.
var ErrInvalidSpec = result.New(result.System, "invalid_schema_spec", "invalid schema spec")

// Load reads and parses the spec file at path. Errors name the file and line
// and say what is wrong.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, result.Wrap(result.System, ErrInvalidSpec.Code, err, "read schema spec")
	}
	return Parse(path, data)
}

// Parse parses and validates a spec. name is used in error messages as the
// file name. All problems found are reported together, one per line, each
// as "name:line: reason".
func Parse(name string, data []byte) (*Spec, error) {
	p := &parser{file: name}
	spec := p.parse(data)
	if len(p.errs) > 0 {
		return nil, result.Wrap(result.System, ErrInvalidSpec.Code, errors.Join(p.errs...), "")
	}
	return spec, nil
}

// Table returns the table named name, or nil.
func (s *Spec) Table(name string) *Table {
	for i := range s.Tables {
		if s.Tables[i].Name == name {
			return &s.Tables[i]
		}
	}
	return nil
}

// aggregate returns the continuous aggregate named name, or nil.
func (s *Spec) aggregate(name string) *ContinuousAggregate {
	for i := range s.ContinuousAggregates {
		if s.ContinuousAggregates[i].Name == name {
			return &s.ContinuousAggregates[i]
		}
	}
	return nil
}

// Column returns the column named name, or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}

// sql renders a filter as SQL.
func (f *Filter) sql() string {
	vals := make([]string, len(f.In))
	for i, v := range f.In {
		vals[i] = literal(v)
	}
	return quote(f.Column) + " IN (" + strings.Join(vals, ", ") + ")"
}

// checkSQL renders a check's expression.
func (c Check) sql() string { return (&Filter{Column: c.Column, In: c.In}).sql() }

// describe gives a one-line description used in comments and plans.
func (c Check) describe() string { return fmt.Sprintf("%s IN (%s)", c.Column, strings.Join(c.In, ",")) }
