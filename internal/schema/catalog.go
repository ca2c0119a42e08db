package schema

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qicore/qiflow/internal/result"
)

// managedMarker starts the comment qiflow puts on the tables, indexes,
// checks and continuous aggregates it creates: only those are changed or
// dropped when the spec no longer matches, so objects made by hand are left
// alone. On tables and aggregates the comment also names the owning spec
// (ownership.go).
const managedMarker = "qiflow"

// Server describes the database a plan was made against.
type Server struct {
	// PostgresVersion is server_version, e.g. "15.8".
	PostgresVersion string `json:"postgres_version"`
	// TimescaleDB is the installed extension's version, or "" when the
	// extension is not created in this database.
	TimescaleDB string `json:"timescaledb,omitempty"`
	// TimescaleDBAvailable is the version CREATE EXTENSION would install,
	// or "" when TimescaleDB is not installed on the server or not in
	// shared_preload_libraries.
	TimescaleDBAvailable string `json:"timescaledb_available,omitempty"`
	// License is "timescale" (community: columnstore, policies and
	// continuous aggregates) or "apache" (hypertables only).
	License string `json:"license,omitempty"`
}

// version returns the TimescaleDB version in effect after apply, as
// [major, minor], or nil without TimescaleDB.
func (s Server) version() []int {
	v := s.TimescaleDB
	if v == "" {
		v = s.TimescaleDBAvailable
	}
	if v == "" {
		return nil
	}
	parts := strings.SplitN(v, ".", 3)
	out := []int{0, 0}
	for i := 0; i < 2 && i < len(parts); i++ {
		out[i], _ = strconv.Atoi(strings.TrimFunc(parts[i], func(r rune) bool { return r < '0' || r > '9' }))
	}
	return out
}

// atLeast reports whether TimescaleDB is usable and at least major.minor.
func (s Server) atLeast(major, minor int) bool {
	v := s.version()
	return v != nil && (v[0] > major || v[0] == major && v[1] >= minor)
}

// Hypertables reports whether TimescaleDB is, or can be, created.
func (s Server) Hypertables() bool { return s.version() != nil }

// Community reports whether the TimescaleDB build has the community
// (TSL) features: columnstore, policies and continuous aggregates.
func (s Server) Community() bool { return s.Hypertables() && s.License != "apache" }

// functionsSchema is where TimescaleDB keeps its internal functions.
func (s Server) functionsSchema() string {
	if s.atLeast(2, 12) {
		return "_timescaledb_functions"
	}
	return "_timescaledb_internal"
}

// inspectServer reads versions, availability and license.
func inspectServer(ctx context.Context, conn *pgx.Conn) (Server, error) {
	var s Server
	var installed, available, preload, license pgtype.Text
	err := conn.QueryRow(ctx, `
SELECT current_setting('server_version'),
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'),
       current_setting('shared_preload_libraries'),
       current_setting('timescaledb.license', true)`).Scan(&s.PostgresVersion, &installed, &available, &preload, &license)
	if err != nil {
		return s, fmt.Errorf("inspect server: %w", err)
	}
	s.TimescaleDB = installed.String
	if available.Valid && strings.Contains(preload.String, "timescaledb") {
		s.TimescaleDBAvailable = available.String
	}
	s.License = license.String
	if s.Hypertables() && s.License == "" {
		s.License = "timescale"
	}
	return s, nil
}

// liveTable is what the catalog says about one table of the spec.
type liveTable struct {
	oid     uint32
	columns []Column
	pkName  string
	pk      []string
	checks  map[string]string // name → comment
	indexes map[string]liveIndex
	hasRows bool
	hyper   *liveHypertable
}

func (t *liveTable) column(name string) *Column {
	for i := range t.columns {
		if t.columns[i].Name == name {
			return &t.columns[i]
		}
	}
	return nil
}

// liveIndex is a secondary index.
type liveIndex struct {
	Index
	managed bool
}

// liveHypertable is a table's TimescaleDB state.
type liveHypertable struct {
	timeColumn    string
	chunkInterval Interval
	columnstore   bool
	segmentBy     []string
	orderBy       []OrderColumn
	compressAfter *Interval // nil: no policy
	dropAfter     *Interval // nil: no policy
}

// inspectTable reads the table schema.name, or returns nil if it does not
// exist.
func inspectTable(ctx context.Context, conn *pgx.Conn, srv Server, schema, name string) (*liveTable, error) {
	t := &liveTable{checks: map[string]string{}, indexes: map[string]liveIndex{}}
	err := conn.QueryRow(ctx, `
SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, schema, name).Scan(&t.oid)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect table %s: %w", name, err)
	}
	rows, err := conn.Query(ctx, `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid)
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("inspect columns of %s: %w", name, err)
	}
	for rows.Next() {
		var c Column
		var def pgtype.Text
		if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &def); err != nil {
			return nil, fmt.Errorf("inspect columns of %s: %w", name, err)
		}
		if def.Valid {
			c.Default = catalogDefault(def.String, c.Type)
		}
		t.columns = append(t.columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect columns of %s: %w", name, err)
	}

	rows, err = conn.Query(ctx, `
SELECT con.conname, con.contype::text, COALESCE(obj_description(con.oid, 'pg_constraint'), ''),
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.ord)
FROM pg_constraint con WHERE con.conrelid = $1 AND con.contype IN ('p', 'c')`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("inspect constraints of %s: %w", name, err)
	}
	for rows.Next() {
		var conName, conType, comment string
		var cols []string
		if err := rows.Scan(&conName, &conType, &comment, &cols); err != nil {
			return nil, fmt.Errorf("inspect constraints of %s: %w", name, err)
		}
		if conType == "p" {
			t.pkName, t.pk = conName, cols
		} else {
			t.checks[conName] = comment
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect constraints of %s: %w", name, err)
	}

	rows, err = conn.Query(ctx, `
SELECT ic.relname, i.indisunique, COALESCE(obj_description(ic.oid, 'pg_class'), ''),
       ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, ord)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.ord),
       ARRAY(SELECT (o.opt & 1) = 1 FROM unnest(i.indoption::int2[]) WITH ORDINALITY o(opt, ord) ORDER BY o.ord)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = $1 AND NOT i.indisprimary`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("inspect indexes of %s: %w", name, err)
	}
	for rows.Next() {
		var ix liveIndex
		var comment string
		var cols []string
		var desc []bool
		if err := rows.Scan(&ix.Name, &ix.Unique, &comment, &cols, &desc); err != nil {
			return nil, fmt.Errorf("inspect indexes of %s: %w", name, err)
		}
		for i, c := range cols {
			ix.Columns = append(ix.Columns, IndexColumn{Name: c, Desc: i < len(desc) && desc[i]})
		}
		ix.managed = strings.HasPrefix(comment, managedMarker)
		t.indexes[ix.Name] = ix
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect indexes of %s: %w", name, err)
	}

	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+quoteQualified(schema, name)+")").Scan(&t.hasRows); err != nil {
		return nil, fmt.Errorf("inspect rows of %s: %w", name, err)
	}
	if srv.TimescaleDB != "" {
		if t.hyper, err = inspectHypertable(ctx, conn, srv, schema, name); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// inspectHypertable reads a table's TimescaleDB state, or returns nil if it
// is not a hypertable.
func inspectHypertable(ctx context.Context, conn *pgx.Conn, srv Server, schema, name string) (*liveHypertable, error) {
	h := &liveHypertable{}
	var interval pgtype.Interval
	err := conn.QueryRow(ctx, `
SELECT d.column_name, d.time_interval, h.compression_enabled
FROM timescaledb_information.dimensions d
JOIN timescaledb_information.hypertables h USING (hypertable_schema, hypertable_name)
WHERE d.hypertable_schema = $1 AND d.hypertable_name = $2 AND d.dimension_number = 1`, schema, name).
		Scan(&h.timeColumn, &interval, &h.columnstore)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect hypertable %s: %w", name, err)
	}
	h.chunkInterval = intervalOf(interval)

	rows, err := conn.Query(ctx, `
SELECT attname::text, segmentby_column_index IS NOT NULL, COALESCE(NOT orderby_asc, false), COALESCE(orderby_nullsfirst, false)
FROM timescaledb_information.compression_settings
WHERE hypertable_schema = $1 AND hypertable_name = $2
ORDER BY segmentby_column_index NULLS LAST, orderby_column_index`, schema, name)
	if err != nil {
		return nil, fmt.Errorf("inspect columnstore settings of %s: %w", name, err)
	}
	for rows.Next() {
		var col string
		var segment, desc, nullsFirst bool
		if err := rows.Scan(&col, &segment, &desc, &nullsFirst); err != nil {
			return nil, fmt.Errorf("inspect columnstore settings of %s: %w", name, err)
		}
		if segment {
			h.segmentBy = append(h.segmentBy, col)
		} else {
			h.orderBy = append(h.orderBy, OrderColumn{Name: col, Desc: desc, NullsFirst: nullsFirst})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect columnstore settings of %s: %w", name, err)
	}

	if !srv.Community() {
		return h, nil
	}
	rows, err = conn.Query(ctx, `
SELECT proc_name::text, (config->>'compress_after')::interval, (config->>'drop_after')::interval
FROM timescaledb_information.jobs
WHERE hypertable_schema = $1 AND hypertable_name = $2 AND proc_name IN ('policy_compression', 'policy_retention')`, schema, name)
	if err != nil {
		return nil, fmt.Errorf("inspect policies of %s: %w", name, err)
	}
	for rows.Next() {
		var proc string
		var compressAfter, dropAfter pgtype.Interval
		if err := rows.Scan(&proc, &compressAfter, &dropAfter); err != nil {
			return nil, fmt.Errorf("inspect policies of %s: %w", name, err)
		}
		if proc == "policy_compression" {
			iv := intervalOf(compressAfter) // zero when configured otherwise (created_before)
			h.compressAfter = &iv
		} else {
			iv := intervalOf(dropAfter)
			h.dropAfter = &iv
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect policies of %s: %w", name, err)
	}
	return h, nil
}

// liveAggregate is a continuous aggregate found in the schema.
type liveAggregate struct {
	comment      string
	realtime     bool
	refresh      *Refresh
	materialized string // materialization hypertable, schema-qualified and quoted
}

// inspectAggregates reads every continuous aggregate in schema.
func inspectAggregates(ctx context.Context, conn *pgx.Conn, srv Server, schema string) (map[string]*liveAggregate, error) {
	out := map[string]*liveAggregate{}
	if srv.TimescaleDB == "" || !srv.Community() {
		return out, nil
	}
	rows, err := conn.Query(ctx, `
SELECT ca.view_name::text, NOT ca.materialized_only,
       COALESCE(obj_description(format('%I.%I', ca.view_schema, ca.view_name)::regclass, 'pg_class'), ''),
       format('%I.%I', ca.materialization_hypertable_schema, ca.materialization_hypertable_name),
       (j.config->>'start_offset')::interval, (j.config->>'end_offset')::interval, j.schedule_interval
FROM timescaledb_information.continuous_aggregates ca
LEFT JOIN timescaledb_information.jobs j
  ON j.hypertable_schema = ca.view_schema AND j.hypertable_name = ca.view_name
 AND j.proc_name = 'policy_refresh_continuous_aggregate'
WHERE ca.view_schema = $1`, schema)
	if err != nil {
		return nil, fmt.Errorf("inspect continuous aggregates: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var start, end, every pgtype.Interval
		a := &liveAggregate{}
		if err := rows.Scan(&name, &a.realtime, &a.comment, &a.materialized, &start, &end, &every); err != nil {
			return nil, fmt.Errorf("inspect continuous aggregates: %w", err)
		}
		if every.Valid {
			a.refresh = &Refresh{StartOffset: intervalOf(start), EndOffset: intervalOf(end), ScheduleInterval: intervalOf(every)}
		}
		out[name] = a
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect continuous aggregates: %w", err)
	}
	return out, nil
}

// classify gives a database error its category from internal/result, so
// that a caller can tell a lost connection (retry) from a bad spec or a
// refused change (stop).
func classify(err error, doing string) error {
	if err == nil {
		return nil
	}
	return result.Classify(fmt.Errorf("%s: %w", doing, err))
}
