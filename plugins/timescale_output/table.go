package timescale_output

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/qicore/qiflow/internal/decimal"
	"github.com/qicore/qiflow/internal/result"
)

// column is one column of the target table, as the catalog describes it.
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

// loadTable reads the table's columns and primary key from the catalog.
func loadTable(ctx context.Context, pool *pgxpool.Pool, ident pgx.Identifier) (*table, error) {
	var oid *uint32
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1)::oid", ident.Sanitize()).Scan(&oid); err != nil {
		return nil, fmt.Errorf("look up table %s: %w", ident.Sanitize(), err)
	}
	if oid == nil {
		return nil, result.New(result.System, "unknown_table", fmt.Sprintf("table %s does not exist", ident.Sanitize()))
	}
	t := &table{ident: ident, columns: map[string]column{}}
	rows, err := pool.Query(ctx, `
SELECT a.attname, a.atttypid, format_type(a.atttypid, a.atttypmod), a.atttypmod, a.attnotnull, a.atthasdef
FROM pg_attribute a
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

// errValue is a BUSINESS error for a value that cannot be stored in col.
func errValue(col column, format string, args ...any) error {
	return result.New(result.Business, "invalid_value",
		fmt.Sprintf("column %s %s: %s", col.name, col.typeName, fmt.Sprintf(format, args...))).With("column", col.name)
}

// encode converts v into the Go value pgx encodes in binary for col, and
// checks that it fits: precision and scale, length, range, NOT NULL.
func encode(col column, v any) (any, error) {
	if v == nil {
		if col.notNull {
			return nil, errValue(col, "is required (NOT NULL)")
		}
		return nil, nil
	}
	switch col.typeOID {
	case oidNumeric:
		n, err := toNumeric(v)
		if err != nil {
			return nil, errValue(col, "%v", err)
		}
		precision, scale := 0, 0
		if col.typmod >= 4 {
			precision, scale = int((col.typmod-4)>>16), int((col.typmod-4)&0xffff)
		}
		if err := decimal.Fit(n, precision, scale); err != nil {
			return nil, errValue(col, "%v", err)
		}
		return n, nil
	case oidText, oidVarchar, oidBPChar:
		s, ok := v.(string)
		if !ok {
			return nil, errValue(col, "want a string, got %T", v)
		}
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return nil, errValue(col, "not valid UTF-8 text")
		}
		if limit := int(col.typmod - 4); col.typmod >= 4 && utf8.RuneCountInString(s) > limit {
			return nil, errValue(col, "%d characters, the column allows %d", utf8.RuneCountInString(s), limit)
		}
		return s, nil
	case oidTimestamptz, oidTimestamp, oidDate:
		t, err := toTime(v)
		if err != nil {
			return nil, errValue(col, "%v", err)
		}
		return t, nil
	case oidInt2, oidInt4, oidInt8:
		i, err := toInt(v)
		if err != nil {
			return nil, errValue(col, "%v", err)
		}
		limit := map[uint32]int64{oidInt2: math.MaxInt16, oidInt4: math.MaxInt32, oidInt8: math.MaxInt64}[col.typeOID]
		if i > limit || i < -limit-1 {
			return nil, errValue(col, "%d is out of range", i)
		}
		switch col.typeOID {
		case oidInt2:
			return int16(i), nil
		case oidInt4:
			return int32(i), nil
		}
		return i, nil
	case oidFloat4, oidFloat8:
		return toFloat(col, v)
	case oidBool:
		b, ok := v.(bool)
		if !ok {
			return nil, errValue(col, "want a boolean, got %T", v)
		}
		return b, nil
	case oidJSON, oidJSONB:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, errValue(col, "%v", err)
		}
		return string(b), nil
	}
	return v, nil
}

func toNumeric(v any) (pgtype.Numeric, error) {
	switch x := v.(type) {
	case pgtype.Numeric:
		return x, nil
	case json.Number:
		return decimal.Parse(string(x))
	case string:
		return decimal.Parse(strings.TrimSpace(x))
	case int64:
		return decimal.Parse(strconv.FormatInt(x, 10))
	case int32:
		return decimal.Parse(strconv.FormatInt(int64(x), 10))
	case int:
		return decimal.Parse(strconv.Itoa(x))
	case uint64:
		return decimal.Parse(strconv.FormatUint(x, 10))
	case float64:
		// A float only reaches here when a mapping computed one; its shortest
		// exact rendering is what the user computed.
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return pgtype.Numeric{}, fmt.Errorf("%v is not a finite number", x)
		}
		return decimal.Parse(strconv.FormatFloat(x, 'f', -1, 64))
	}
	return pgtype.Numeric{}, fmt.Errorf("want a decimal number or string, got %T", v)
}

func toTime(v any) (time.Time, error) {
	switch x := v.(type) {
	case time.Time:
		return x, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(x))
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not an RFC 3339 timestamp", x)
		}
		return t, nil
	case json.Number, int64, int:
		ms, err := toInt(x)
		if err != nil {
			return time.Time{}, fmt.Errorf("want RFC 3339 or epoch milliseconds: %w", err)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("want an RFC 3339 string or epoch milliseconds, got %T", v)
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case int64:
		return x, nil
	case int32:
		return int64(x), nil
	case int:
		return int64(x), nil
	case json.Number, string, pgtype.Numeric:
		n, err := toNumeric(x)
		if err != nil {
			return 0, err
		}
		i, ok := decimal.Int64(n)
		if !ok {
			return 0, fmt.Errorf("%s is not a whole number in range", decimal.String(n))
		}
		return i, nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("%v is not a whole number", x)
		}
		return int64(x), nil
	}
	return 0, fmt.Errorf("want a whole number, got %T", v)
}

func toFloat(col column, v any) (any, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return nil, errValue(col, "%v", err)
		}
		return f, nil
	case int64:
		return float64(x), nil
	}
	return nil, errValue(col, "want a number, got %T", v)
}
