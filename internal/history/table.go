package history

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Querier is what the reader needs of a connection: *pgx.Conn,
// *pgxpool.Pool and pgx.Tx all qualify.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// columnKind says how a column travels and how it is written into JSON.
type columnKind int

const (
	// kindTime is a timestamptz, read in binary and written as RFC 3339.
	kindTime columnKind = iota + 1
	// kindInt is int2/int4/int8, written as a JSON number.
	kindInt
	// kindBool is written as true or false.
	kindBool
	// kindText is text, varchar, char or name, written as a JSON string.
	kindText
	// kindJSON is json or jsonb, read as text and embedded as it is.
	kindJSON
	// kindString is any other type (numeric above all), read as its text
	// form, cast on the server, and written as a JSON string: exact, and
	// what the wire format accepts for decimals.
	kindString
)

// PostgreSQL type OIDs the reader treats specially.
const (
	oidBool        = 16
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidJSON        = 114
	oidBPChar      = 1042
	oidVarchar     = 1043
	oidTimestamptz = 1184
	oidJSONB       = 3802
)

func kindOf(oid uint32) columnKind {
	switch oid {
	case oidTimestamptz:
		return kindTime
	case oidInt2, oidInt4, oidInt8:
		return kindInt
	case oidBool:
		return kindBool
	case oidText, oidVarchar, oidBPChar, oidName:
		return kindText
	case oidJSON, oidJSONB:
		return kindJSON
	}
	return kindString
}

// column is one column of the table as the catalog describes it.
type column struct {
	name string
	// typeName is format_type without the modifier, for casting a
	// Position's text back to the column's type.
	typeName string
	kind     columnKind
}

// table is what the reader learned about the table from the catalog.
type table struct {
	ident      pgx.Identifier
	columns    []column
	primaryKey []string
	// timeDimension is the hypertable's time column, "" for a plain table.
	timeDimension string
}

func (t *table) column(name string) (column, bool) {
	for _, c := range t.columns {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

// splitTableName splits "schema.table" or "table"; quotes are not
// interpreted, names are taken as they are written.
func splitTableName(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 || slices.Contains(parts, "") {
		return nil, fmt.Errorf("history: table %q: want table or schema.table", name)
	}
	return pgx.Identifier(parts), nil
}

// describeTable reads the table's columns, primary key and, when
// TimescaleDB is there, its time dimension.
func describeTable(ctx context.Context, db Querier, name string) (*table, error) {
	ident, err := splitTableName(name)
	if err != nil {
		return nil, err
	}
	t := &table{ident: ident}
	var oid uint32
	if err := db.QueryRow(ctx, `SELECT coalesce(to_regclass($1)::oid, 0)`, ident.Sanitize()).Scan(&oid); err != nil {
		return nil, fmt.Errorf("history: look up table %s: %w", name, err)
	}
	if oid == 0 {
		return nil, fmt.Errorf("history: table %s does not exist", name)
	}
	rows, err := db.Query(ctx, `
		SELECT a.attname, pg_catalog.format_type(a.atttypid, NULL), a.atttypid
		FROM pg_catalog.pg_attribute a
		WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, oid)
	if err != nil {
		return nil, fmt.Errorf("history: columns of %s: %w", name, err)
	}
	for rows.Next() {
		var c column
		var typ uint32
		if err := rows.Scan(&c.name, &c.typeName, &typ); err != nil {
			return nil, fmt.Errorf("history: columns of %s: %w", name, err)
		}
		c.kind = kindOf(typ)
		t.columns = append(t.columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: columns of %s: %w", name, err)
	}
	pkRows, err := db.Query(ctx, `
		SELECT a.attname
		FROM pg_catalog.pg_index i
		CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
		JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
		WHERE i.indrelid = $1 AND i.indisprimary
		ORDER BY k.ord`, oid)
	if err != nil {
		return nil, fmt.Errorf("history: primary key of %s: %w", name, err)
	}
	if t.primaryKey, err = pgx.CollectRows(pkRows, pgx.RowTo[string]); err != nil {
		return nil, fmt.Errorf("history: primary key of %s: %w", name, err)
	}
	var hasTimescale bool
	if err := db.QueryRow(ctx, `SELECT to_regclass('timescaledb_information.dimensions') IS NOT NULL`).Scan(&hasTimescale); err != nil {
		return nil, fmt.Errorf("history: look for TimescaleDB: %w", err)
	}
	if hasTimescale {
		err := db.QueryRow(ctx, `
			SELECT d.column_name::text
			FROM timescaledb_information.dimensions d
			JOIN pg_catalog.pg_class c ON c.relname = d.hypertable_name
			JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.nspname = d.hypertable_schema
			WHERE c.oid = $1 AND d.dimension_number = 1`, oid).Scan(&t.timeDimension)
		if err != nil && err != pgx.ErrNoRows {
			return nil, fmt.Errorf("history: time dimension of %s: %w", name, err)
		}
	}
	return t, nil
}
