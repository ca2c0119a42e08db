package timescale_output

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/qicore/qiflow/internal/result"
)

// column is one column of the target table, as the catalog describes it.
// A column of a domain type is described by the domain's base type, which
// is what its values are encoded as; the domain's own checks apply on
// write.
type column struct {
	name       string
	typeOID    uint32
	typeName   string // format_type, e.g. "numeric(20,8)"
	typmod     int32
	notNull    bool
	hasDefault bool
}

// table is the target table: its quoted name, columns and primary key.
type table struct {
	ident      pgx.Identifier
	columns    map[string]column
	order      []string // columns in table order
	primaryKey []string
}

// parseTableName splits "schema.table" (or "table") into an identifier.
func parseTableName(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("table %q: want table or schema.table", name)
	}
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("table %q: empty name part", name)
		}
	}
	return pgx.Identifier(parts), nil
}

// querier is a pool or a connection.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// loadTable reads the table's columns and primary key from the catalog.
func loadTable(ctx context.Context, pool querier, ident pgx.Identifier) (*table, error) {
	var oid *uint32
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1)::oid", ident.Sanitize()).Scan(&oid); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", ident.Sanitize(), err)
	}
	if oid == nil {
		return nil, result.New(result.System, "unknown_table", fmt.Sprintf("table %s does not exist", ident.Sanitize()))
	}
	t := &table{ident: ident, columns: map[string]column{}}
	rows, err := pool.Query(ctx, `
SELECT a.attname,
  CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE a.atttypid END,
  CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) ELSE format_type(a.atttypid, a.atttypmod) END,
  CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
  a.attnotnull OR (t.typtype = 'd' AND t.typnotnull), a.atthasdef
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, *oid)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", ident.Sanitize(), err)
	}
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typeOID, &c.typeName, &c.typmod, &c.notNull, &c.hasDefault); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", ident.Sanitize(), err)
		}
		t.columns[c.name] = c
		t.order = append(t.order, c.name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", ident.Sanitize(), err)
	}
	rows, err = pool.Query(ctx, `
SELECT a.attname
FROM pg_index i
JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = $1 AND i.indisprimary
ORDER BY k.pos`, *oid)
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s: %w", ident.Sanitize(), err)
	}
	t.primaryKey, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read primary key of %s: %w", ident.Sanitize(), err)
	}
	return t, nil
}

// pick returns the named columns, or an error naming every unknown one.
func (t *table) pick(names []string) ([]column, error) {
	var cols []column
	var unknown []string
	for _, n := range names {
		c, ok := t.columns[n]
		if !ok {
			unknown = append(unknown, n)
			continue
		}
		cols = append(cols, c)
	}
	if len(unknown) > 0 {
		return nil, result.New(result.System, "unknown_column",
			fmt.Sprintf("table %s has no column %s (it has %s)", t.ident.Sanitize(), strings.Join(unknown, ", "), strings.Join(t.order, ", ")))
	}
	return cols, nil
}

// withoutDefaults returns the table's columns that have no default, in
// table order: what a mapping must provide when no columns are configured.
func (t *table) withoutDefaults() []string {
	var names []string
	for _, n := range t.order {
		if !t.columns[n].hasDefault {
			names = append(names, n)
		}
	}
	return names
}

// Type OIDs the encoder knows.
const (
	oidBool        = 16
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidFloat4      = 700
	oidFloat8      = 701
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidDate        = 1082
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidNumeric     = 1700
	oidUUID        = 2950
	oidJSONB       = 3802
)
