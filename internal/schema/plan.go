package schema

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/qicore/qiflow/internal/result"
)

// Step is one change Apply makes: a SQL statement (or a short group of
// statements that belong together) and what it does.
type Step struct {
	// Description says what the step changes, e.g. "add column volume to
	// crypto_prices".
	Description string `json:"description"`
	// SQL is the exact text Apply runs.
	SQL string `json:"sql"`
	// Destructive marks a change that can lose data or break readers:
	// dropping a column or an aggregate, changing a column type or a
	// primary key, shortening retention, changing the chunk interval of a
	// table with rows. Apply refuses these without AllowDestructive.
	Destructive bool `json:"destructive,omitempty"`
	// Standalone marks a statement TimescaleDB refuses inside a
	// transaction block; Apply runs it on its own after the others.
	Standalone bool `json:"standalone,omitempty"`
}

// PlanResult is the ordered list of changes that would make the database
// match the spec, and what could not be done.
type PlanResult struct {
	// File is the spec's file name.
	File string `json:"file"`
	// Spec is the spec's name, the owner recorded on what it creates.
	Spec string `json:"spec"`
	// Schema is the PostgreSQL schema the spec manages.
	Schema string `json:"schema"`
	// Server is the database the plan was made against.
	Server Server `json:"server"`
	// Steps in the order Apply runs them (Standalone steps last).
	Steps []Step `json:"steps"`
	// Warnings name the features of the spec that this server cannot have,
	// and objects the plan leaves alone.
	Warnings []string `json:"warnings,omitempty"`
	// Unmanaged are the tables and continuous aggregates of the schema
	// that this spec neither declares nor owns: another spec's, or
	// nobody's. The plan never changes them.
	Unmanaged []Object `json:"unmanaged,omitempty"`
}

// Empty reports whether the database already matches the spec.
func (p *PlanResult) Empty() bool { return len(p.Steps) == 0 }

// Destructive returns the steps that Apply refuses without
// AllowDestructive.
func (p *PlanResult) Destructive() []Step {
	var out []Step
	for _, s := range p.Steps {
		if s.Destructive {
			out = append(out, s)
		}
	}
	return out
}

// String renders the plan for people: numbered steps with their SQL,
// destructive ones marked, then the warnings; or "No changes."
func (p *PlanResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Plan for %s on %s\n", p.File, p.Server.describe())
	for _, w := range p.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	if line := p.unmanagedSummary(); line != "" {
		b.WriteString(line + "\n")
	}
	if p.Empty() {
		b.WriteString("No changes: the database matches the spec.\n")
		return b.String()
	}
	for i, s := range p.Steps {
		mark := ""
		if s.Destructive {
			mark = " [DESTRUCTIVE]"
		}
		if s.Standalone {
			mark += " [outside transaction]"
		}
		fmt.Fprintf(&b, "\n%d. %s%s\n", i+1, s.Description, mark)
		for _, line := range strings.Split(s.SQL, "\n") {
			fmt.Fprintf(&b, "   %s\n", line)
		}
	}
	fmt.Fprintf(&b, "\n%d change(s), %d destructive.\n", len(p.Steps), len(p.Destructive()))
	return b.String()
}

// describe renders the server for plan and status headers.
func (s Server) describe() string {
	d := "PostgreSQL " + s.PostgresVersion
	switch {
	case s.TimescaleDB != "":
		d += fmt.Sprintf(" with TimescaleDB %s (%s license)", s.TimescaleDB, s.License)
	case s.TimescaleDBAvailable != "":
		d += fmt.Sprintf(" with TimescaleDB %s available, not yet created (%s license)", s.TimescaleDBAvailable, s.License)
	default:
		d += " without TimescaleDB"
	}
	return d
}

// ErrUnsupportedChange is the category and code of a spec change no plan
// can make, such as moving a hypertable to another time column.
var ErrUnsupportedChange = result.New(result.System, "unsupported_schema_change", "unsupported schema change")

// Plan compares spec with the database behind conn and returns the changes
// Apply would make. It only reads the catalog.
func Plan(ctx context.Context, conn *pgx.Conn, spec *Spec) (*PlanResult, error) {
	srv, err := inspectServer(ctx, conn)
	if err != nil {
		return nil, classify(err, "plan")
	}
	pl := &planner{spec: spec, srv: srv, plan: &PlanResult{File: spec.File, Spec: spec.Name, Schema: spec.Schema, Server: srv}, hasRows: map[string]bool{}}
	if err := pl.build(ctx, conn); err != nil {
		return nil, err
	}
	// Standalone steps go last, in their relative order, so that everything
	// else can share one transaction.
	sort.SliceStable(pl.plan.Steps, func(i, j int) bool {
		return !pl.plan.Steps[i].Standalone && pl.plan.Steps[j].Standalone
	})
	return pl.plan, nil
}

// planner accumulates steps and skipped features.
type planner struct {
	spec    *Spec
	srv     Server
	plan    *PlanResult
	skipped []string // hypertable features this server cannot have
	hasRows map[string]bool
	// tableComments holds the comment of every table in the schema, which
	// records its owner.
	tableComments map[string]string
}

func (pl *planner) add(s Step) { pl.plan.Steps = append(pl.plan.Steps, s) }

func (pl *planner) table(name string) string { return quoteQualified(pl.spec.Schema, name) }

func (pl *planner) build(ctx context.Context, conn *pgx.Conn) error {
	srv := pl.srv
	exists, err := schemaExists(ctx, conn, pl.spec.Schema)
	if err != nil {
		return classify(err, "plan")
	}
	if !exists {
		pl.add(Step{Description: "create schema " + pl.spec.Schema, SQL: "CREATE SCHEMA IF NOT EXISTS " + quote(pl.spec.Schema)})
	}
	if srv.TimescaleDB == "" && srv.TimescaleDBAvailable != "" {
		pl.add(Step{Description: "create extension timescaledb " + srv.TimescaleDBAvailable, SQL: "CREATE EXTENSION IF NOT EXISTS timescaledb"})
	}
	aggs, err := inspectAggregates(ctx, conn, srv, pl.spec.Schema)
	if err != nil {
		return classify(err, "plan")
	}
	if pl.tableComments, err = inspectTableComments(ctx, conn, pl.spec.Schema); err != nil {
		return classify(err, "plan")
	}
	if err := pl.divideByOwner(pl.tableComments, aggs); err != nil {
		return err
	}
	pl.dropStaleAggregates(aggs)
	for i := range pl.spec.Tables {
		t := &pl.spec.Tables[i]
		live, err := inspectTable(ctx, conn, srv, pl.spec.Schema, t.Name)
		if err != nil {
			return classify(err, "plan")
		}
		pl.hasRows[t.Name] = live != nil && live.hasRows
		if err := pl.planTable(t, live); err != nil {
			return err
		}
	}
	for i := range pl.spec.ContinuousAggregates {
		pl.planAggregate(&pl.spec.ContinuousAggregates[i], aggs)
	}
	if len(pl.skipped) > 0 {
		why := "TimescaleDB is not available on this server (not installed, or not in shared_preload_libraries)"
		if srv.Hypertables() {
			why = fmt.Sprintf("TimescaleDB %s is the Apache-2 build, which has no columnstore, policies or continuous aggregates", srv.TimescaleDBAvailable+srv.TimescaleDB)
		}
		pl.plan.Warnings = append(pl.plan.Warnings, why+"; skipped: "+strings.Join(pl.skipped, "; "))
	}
	return nil
}

func (pl *planner) planTable(t *Table, live *liveTable) error {
	qt := pl.table(t.Name)
	if live != nil {
		pl.adoptTable(t.Name, pl.tableComments[t.Name])
	} else {
		pl.add(Step{Description: "create table " + t.Name, SQL: createTableSQL(qt, t) + ";\nCOMMENT ON TABLE " + qt + " IS " + literal(ownerComment(pl.spec.Name))})
		for _, c := range t.Checks {
			pl.add(Step{Description: fmt.Sprintf("mark check %s of %s as managed", c.Name, t.Name), SQL: checkCommentSQL(qt, c)})
		}
		live = &liveTable{checks: map[string]string{}, indexes: map[string]liveIndex{}}
		for _, c := range t.Checks {
			live.checks[c.Name] = checkComment(c)
		}
		live.columns, live.pk = t.Columns, t.PrimaryKey
	}
	if err := pl.planColumns(t, live); err != nil {
		return err
	}
	pl.planPrimaryKey(t, live)
	pl.planChecks(t, live)
	if err := pl.planHypertable(t, live); err != nil {
		return err
	}
	pl.planIndexes(t, live)
	pl.planColumnstore(t, live)
	pl.planRetention(t, live)
	return nil
}

// columnSQL renders a column definition.
func columnSQL(c Column) string {
	s := quote(c.Name) + " " + c.Type
	if c.NotNull {
		s += " NOT NULL"
	}
	if c.Default != "" {
		s += " DEFAULT " + c.Default
	}
	return s
}

func createTableSQL(qt string, t *Table) string {
	var defs []string
	for _, c := range t.Columns {
		defs = append(defs, "    "+columnSQL(c))
	}
	if len(t.PrimaryKey) > 0 {
		defs = append(defs, "    PRIMARY KEY ("+quoteList(t.PrimaryKey)+")")
	}
	for _, c := range t.Checks {
		defs = append(defs, "    CONSTRAINT "+quote(c.Name)+" CHECK ("+c.sql()+")")
	}
	return "CREATE TABLE " + qt + " (\n" + strings.Join(defs, ",\n") + "\n)"
}

func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = quote(n)
	}
	return strings.Join(q, ", ")
}

func checkComment(c Check) string { return managedMarker + ": " + c.describe() }

func checkCommentSQL(qt string, c Check) string {
	return "COMMENT ON CONSTRAINT " + quote(c.Name) + " ON " + qt + " IS " + literal(checkComment(c))
}

func (pl *planner) planColumns(t *Table, live *liveTable) error {
	qt := pl.table(t.Name)
	for _, c := range t.Columns {
		lc := live.column(c.Name)
		if lc == nil {
			if c.NotNull && c.Default == "" && live.hasRows {
				return result.Wrap(ErrUnsupportedChange.Category, ErrUnsupportedChange.Code, nil,
					fmt.Sprintf("%s: cannot add NOT NULL column %s without a default to %s, which has rows", pl.spec.File, c.Name, t.Name))
			}
			pl.add(Step{Description: fmt.Sprintf("add column %s to %s", c.Name, t.Name), SQL: "ALTER TABLE " + qt + " ADD COLUMN " + columnSQL(c)})
			continue
		}
		alter := "ALTER TABLE " + qt + " ALTER COLUMN " + quote(c.Name)
		if lc.Type != c.Type {
			pl.add(Step{
				Description: fmt.Sprintf("change type of %s.%s from %s to %s", t.Name, c.Name, lc.Type, c.Type),
				SQL:         alter + " TYPE " + c.Type,
				Destructive: !widens(lc.Type, c.Type),
			})
		}
		if lc.NotNull != c.NotNull {
			verb := "DROP NOT NULL"
			if c.NotNull {
				verb = "SET NOT NULL"
			}
			pl.add(Step{Description: fmt.Sprintf("%s on %s.%s", strings.ToLower(verb), t.Name, c.Name), SQL: alter + " " + verb})
		}
		if lc.Default != c.Default {
			if c.Default == "" {
				pl.add(Step{Description: fmt.Sprintf("drop default of %s.%s", t.Name, c.Name), SQL: alter + " DROP DEFAULT"})
			} else {
				pl.add(Step{Description: fmt.Sprintf("set default of %s.%s to %s", t.Name, c.Name, c.Default), SQL: alter + " SET DEFAULT " + c.Default})
			}
		}
	}
	for _, lc := range live.columns {
		if t.Column(lc.Name) == nil {
			pl.add(Step{
				Description: fmt.Sprintf("drop column %s of %s (not in the spec)", lc.Name, t.Name),
				SQL:         "ALTER TABLE " + qt + " DROP COLUMN " + quote(lc.Name),
				Destructive: true,
			})
		}
	}
	return nil
}

// widens reports whether changing a column from type from to type to keeps
// every value: a longer varchar, or a numeric with more integer digits and
// the same scale.
func widens(from, to string) bool {
	var a, b, as, bs int
	if n, _ := fmt.Sscanf(from, "character varying(%d)", &a); n == 1 {
		if n, _ := fmt.Sscanf(to, "character varying(%d)", &b); n == 1 {
			return b >= a
		}
		return to == "text"
	}
	if n, _ := fmt.Sscanf(from, "numeric(%d,%d)", &a, &as); n == 2 {
		if n, _ := fmt.Sscanf(to, "numeric(%d,%d)", &b, &bs); n == 2 {
			return as == bs && b >= a
		}
		return to == "numeric"
	}
	return false
}

func (pl *planner) planPrimaryKey(t *Table, live *liveTable) {
	if slices.Equal(live.pk, t.PrimaryKey) {
		return
	}
	qt := pl.table(t.Name)
	if len(live.pk) > 0 {
		pl.add(Step{
			Description: fmt.Sprintf("drop primary key (%s) of %s", strings.Join(live.pk, ", "), t.Name),
			SQL:         "ALTER TABLE " + qt + " DROP CONSTRAINT " + quote(live.pkName),
			Destructive: true,
		})
	}
	if len(t.PrimaryKey) > 0 {
		pl.add(Step{
			Description: fmt.Sprintf("add primary key (%s) to %s", strings.Join(t.PrimaryKey, ", "), t.Name),
			SQL:         "ALTER TABLE " + qt + " ADD PRIMARY KEY (" + quoteList(t.PrimaryKey) + ")",
			Destructive: len(live.pk) > 0,
		})
	}
}

func (pl *planner) planChecks(t *Table, live *liveTable) {
	qt := pl.table(t.Name)
	for _, c := range t.Checks {
		comment, ok := live.checks[c.Name]
		if ok && comment == checkComment(c) {
			continue
		}
		sql := "ALTER TABLE " + qt + " ADD CONSTRAINT " + quote(c.Name) + " CHECK (" + c.sql() + ");\n" + checkCommentSQL(qt, c)
		desc := fmt.Sprintf("add check %s to %s", c.Name, t.Name)
		if ok {
			sql = "ALTER TABLE " + qt + " DROP CONSTRAINT " + quote(c.Name) + ";\n" + sql
			desc = fmt.Sprintf("replace check %s of %s", c.Name, t.Name)
		}
		pl.add(Step{Description: desc, SQL: sql})
	}
	for _, name := range sortedKeys(live.checks) {
		if strings.HasPrefix(live.checks[name], managedMarker) && !slices.ContainsFunc(t.Checks, func(c Check) bool { return c.Name == name }) {
			pl.add(Step{Description: fmt.Sprintf("drop check %s of %s (not in the spec)", name, t.Name), SQL: "ALTER TABLE " + qt + " DROP CONSTRAINT " + quote(name)})
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (pl *planner) planHypertable(t *Table, live *liveTable) error {
	h := t.Hypertable
	if h == nil {
		if live.hyper != nil {
			pl.plan.Warnings = append(pl.plan.Warnings, fmt.Sprintf("%s is a hypertable but the spec declares a plain table; a hypertable cannot be turned back, so it is left as is", t.Name))
		}
		return nil
	}
	if !pl.srv.Hypertables() {
		pl.skipped = append(pl.skipped, fmt.Sprintf("hypertable %s (time column %s, chunks of %s)", t.Name, h.TimeColumn, h.ChunkInterval))
		return nil
	}
	qt := literal(pl.table(t.Name))
	lh := live.hyper
	if lh == nil {
		var sql string
		if pl.srv.atLeast(2, 13) {
			sql = fmt.Sprintf("SELECT create_hypertable(%s, by_range(%s, %s), create_default_indexes => false", qt, literal(h.TimeColumn), h.ChunkInterval.SQL())
		} else {
			sql = fmt.Sprintf("SELECT create_hypertable(%s, %s, chunk_time_interval => %s, create_default_indexes => false", qt, literal(h.TimeColumn), h.ChunkInterval.SQL())
		}
		desc := fmt.Sprintf("make %s a hypertable on %s with chunks of %s", t.Name, h.TimeColumn, h.ChunkInterval)
		if live.hasRows {
			sql += ", migrate_data => true"
			desc += " (moves its existing rows into chunks; locks the table meanwhile)"
		}
		pl.add(Step{Description: desc, SQL: sql + ")"})
		return nil
	}
	if lh.timeColumn != h.TimeColumn {
		return result.Wrap(ErrUnsupportedChange.Category, ErrUnsupportedChange.Code, nil,
			fmt.Sprintf("%s: %s is a hypertable on %s and the spec says %s; a hypertable's time column cannot change: create a new table and copy the rows", pl.spec.File, t.Name, lh.timeColumn, h.TimeColumn))
	}
	if !lh.chunkInterval.Equal(h.ChunkInterval) {
		pl.add(Step{
			Description: fmt.Sprintf("change chunk interval of %s to %s (applies to new chunks)", t.Name, h.ChunkInterval),
			SQL:         fmt.Sprintf("SELECT set_chunk_time_interval(%s, %s)", qt, h.ChunkInterval.SQL()),
			Destructive: live.hasRows,
		})
	}
	return nil
}

func (pl *planner) planIndexes(t *Table, live *liveTable) {
	qt := pl.table(t.Name)
	for _, ix := range t.Indexes {
		create := indexSQL(pl.spec.Schema, qt, ix)
		li, ok := live.indexes[ix.Name]
		switch {
		case !ok:
			pl.add(Step{Description: fmt.Sprintf("create index %s on %s", ix.Name, t.Name), SQL: create})
		case li.Unique != ix.Unique || !slices.Equal(li.Columns, ix.Columns):
			pl.add(Step{
				Description: fmt.Sprintf("rebuild index %s on %s with the spec's columns", ix.Name, t.Name),
				SQL:         "DROP INDEX " + quoteQualified(pl.spec.Schema, ix.Name) + ";\n" + create,
			})
		case !li.managed:
			pl.add(Step{Description: fmt.Sprintf("mark index %s as managed", ix.Name), SQL: indexCommentSQL(pl.spec.Schema, ix.Name)})
		}
	}
	for _, name := range sortedKeys(live.indexes) {
		if live.indexes[name].managed && !slices.ContainsFunc(t.Indexes, func(ix Index) bool { return ix.Name == name }) {
			pl.add(Step{Description: fmt.Sprintf("drop index %s of %s (not in the spec)", name, t.Name), SQL: "DROP INDEX " + quoteQualified(pl.spec.Schema, name)})
		}
	}
}

func indexSQL(schema, qt string, ix Index) string {
	cols := make([]string, len(ix.Columns))
	for i, c := range ix.Columns {
		cols[i] = quote(c.Name)
		if c.Desc {
			cols[i] += " DESC"
		}
	}
	unique := ""
	if ix.Unique {
		unique = "UNIQUE "
	}
	return "CREATE " + unique + "INDEX " + quote(ix.Name) + " ON " + qt + " (" + strings.Join(cols, ", ") + ");\n" + indexCommentSQL(schema, ix.Name)
}

func indexCommentSQL(schema, name string) string {
	return "COMMENT ON INDEX " + quoteQualified(schema, name) + " IS " + literal(managedMarker+": managed by qiflow schema apply")
}

func (pl *planner) planColumnstore(t *Table, live *liveTable) {
	h := t.Hypertable
	if h == nil || !pl.srv.Hypertables() {
		if h != nil && h.Columnstore != nil {
			pl.skipped = append(pl.skipped, fmt.Sprintf("columnstore of %s (segmentby %s, orderby %s, after %s)", t.Name, strings.Join(h.Columnstore.SegmentBy, ","), orderByText(h.Columnstore.OrderBy), h.Columnstore.After))
		}
		return
	}
	if !pl.srv.Community() {
		if h.Columnstore != nil {
			pl.skipped = append(pl.skipped, "columnstore of "+t.Name)
		}
		return
	}
	qt := literal(pl.table(t.Name))
	lh := live.hyper
	if lh == nil {
		lh = &liveHypertable{}
	}
	cs := h.Columnstore
	newAPI := pl.srv.atLeast(2, 18)
	if cs != nil && (!lh.columnstore ||
		len(cs.SegmentBy) > 0 && !slices.Equal(cs.SegmentBy, lh.segmentBy) ||
		len(cs.OrderBy) > 0 && !slices.Equal(cs.OrderBy, lh.orderBy)) {
		var opts []string
		if newAPI {
			opts = append(opts, "timescaledb.enable_columnstore = true")
		} else {
			opts = append(opts, "timescaledb.compress = true")
		}
		prefix := "timescaledb.compress_"
		if newAPI {
			prefix = "timescaledb."
		}
		if len(cs.SegmentBy) > 0 {
			opts = append(opts, prefix+"segmentby = "+literal(quoteList(cs.SegmentBy)))
		}
		if len(cs.OrderBy) > 0 {
			opts = append(opts, prefix+"orderby = "+literal(orderBySQL(cs.OrderBy)))
		}
		pl.add(Step{
			Description: fmt.Sprintf("set columnstore of %s: segmentby %s, orderby %s", t.Name, strings.Join(cs.SegmentBy, ","), orderByText(cs.OrderBy)),
			SQL:         "ALTER TABLE " + pl.table(t.Name) + " SET (" + strings.Join(opts, ", ") + ")",
		})
	}
	var want *Interval
	if cs != nil && !cs.After.IsZero() {
		want = &cs.After
	}
	remove, add := "SELECT remove_compression_policy("+qt+")", ""
	if newAPI {
		remove = "CALL remove_columnstore_policy(" + qt + ")"
	}
	if want != nil {
		add = fmt.Sprintf("SELECT add_compression_policy(%s, compress_after => %s)", qt, want.SQL())
		if newAPI {
			add = fmt.Sprintf("CALL add_columnstore_policy(%s, after => %s)", qt, want.SQL())
		}
	}
	pl.planPolicy(t.Name, "columnstore policy", lh.compressAfter, want, remove, add, false)
}

// planPolicy adds the steps that turn policy have into want: add, replace
// (remove then add) or remove. dropsData marks as destructive the steps
// that can delete rows (retention): adding the policy to a table with
// rows, or shortening it.
func (pl *planner) planPolicy(table, what string, have, want *Interval, remove, add string, dropsData bool) {
	switch {
	case have == nil && want == nil:
	case have == nil:
		pl.add(Step{
			Description: fmt.Sprintf("add %s to %s: after %s", what, table, want),
			SQL:         add,
			Destructive: dropsData && pl.hasRows[table],
		})
	case want == nil:
		pl.add(Step{Description: fmt.Sprintf("remove %s of %s (not in the spec)", what, table), SQL: remove})
	case !have.Equal(*want):
		pl.add(Step{
			Description: fmt.Sprintf("change %s of %s from %s to %s", what, table, have, want),
			SQL:         remove + ";\n" + add,
			Destructive: dropsData && want.approx() < have.approx(),
		})
	}
}

func orderBySQL(cols []OrderColumn) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		o := c
		o.Name = quote(c.Name)
		parts[i] = o.String()
	}
	return strings.Join(parts, ", ")
}

func orderByText(cols []OrderColumn) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = c.String()
	}
	return strings.Join(parts, ",")
}

func (pl *planner) planRetention(t *Table, live *liveTable) {
	h := t.Hypertable
	if h == nil {
		return
	}
	if !pl.srv.Community() {
		if h.Retention != nil {
			pl.skipped = append(pl.skipped, fmt.Sprintf("retention of %s (drop after %s)", t.Name, h.Retention.DropAfter))
		}
		return
	}
	qt := literal(pl.table(t.Name))
	var have, want *Interval
	if live.hyper != nil {
		have = live.hyper.dropAfter
	}
	add := ""
	if h.Retention != nil {
		want = &h.Retention.DropAfter
		add = fmt.Sprintf("SELECT add_retention_policy(%s, drop_after => %s)", qt, want.SQL())
	}
	pl.planPolicy(t.Name, "retention policy", have, want, "SELECT remove_retention_policy("+qt+")", add, true)
}

// aggregateQuery renders the SELECT of a continuous aggregate.
func (pl *planner) aggregateQuery(ca *ContinuousAggregate) string {
	src := pl.spec.Table(ca.Source)
	tc := quote(src.Hypertable.TimeColumn)
	cols := []string{"time_bucket(" + ca.Bucket.SQL() + ", " + tc + ") AS bucket"}
	group := []string{"bucket"}
	for _, g := range ca.GroupBy {
		cols = append(cols, quote(g))
		group = append(group, quote(g))
	}
	for _, a := range ca.Columns {
		var expr string
		switch {
		case a.Function == "first" || a.Function == "last":
			expr = a.Function + "(" + quote(a.Column) + ", " + tc + ")"
		case a.Column == "":
			expr = a.Function + "(*)"
		default:
			expr = a.Function + "(" + quote(a.Column) + ")"
		}
		cols = append(cols, expr+" AS "+quote(a.Name))
	}
	q := "SELECT " + strings.Join(cols, ",\n       ") + "\nFROM " + pl.table(ca.Source)
	if ca.Where != nil {
		q += "\nWHERE " + ca.Where.sql()
	}
	return q + "\nGROUP BY " + strings.Join(group, ", ")
}

// aggregateFingerprint is a hash of the aggregate's query: a changed
// definition shows as a changed fingerprint.
func (pl *planner) aggregateFingerprint(ca *ContinuousAggregate) string {
	sum := sha256.Sum256([]byte(pl.aggregateQuery(ca)))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// aggregateComment is the managed marker with the owning spec and the
// query's fingerprint.
func (pl *planner) aggregateComment(ca *ContinuousAggregate) string {
	return ownerComment(pl.spec.Name) + " " + pl.aggregateFingerprint(ca)
}

// dropStaleAggregates drops the aggregates this spec owns and no longer
// declares, and those it declares whose definition changed. An aggregate
// it does not own (another spec's, or one no spec has adopted yet) is left
// alone.
func (pl *planner) dropStaleAggregates(live map[string]*liveAggregate) {
	for _, name := range sortedKeys(live) {
		la := live[name]
		ca := pl.spec.aggregate(name)
		var desc string
		switch {
		case ca == nil && ownerOf(la.comment) == pl.spec.Name:
			desc = fmt.Sprintf("drop continuous aggregate %s (not in the spec)", name)
		case ca != nil && fingerprintOf(la.comment) != pl.aggregateFingerprint(ca):
			desc = fmt.Sprintf("drop continuous aggregate %s to re-create it with the spec's definition (its materialized rows are rebuilt from the source)", name)
			delete(live, name)
		default:
			continue
		}
		pl.add(Step{Description: desc, SQL: "DROP MATERIALIZED VIEW " + quoteQualified(pl.spec.Schema, name), Destructive: true})
	}
}

func (pl *planner) planAggregate(ca *ContinuousAggregate, live map[string]*liveAggregate) {
	if !pl.srv.Community() {
		pl.skipped = append(pl.skipped, "continuous aggregate "+ca.Name)
		return
	}
	qv := quoteQualified(pl.spec.Schema, ca.Name)
	la := live[ca.Name]
	if la == nil {
		pl.add(Step{
			Description: fmt.Sprintf("create continuous aggregate %s: %s buckets of %s", ca.Name, ca.Bucket, ca.Source),
			SQL: fmt.Sprintf("CREATE MATERIALIZED VIEW %s\nWITH (timescaledb.continuous, timescaledb.materialized_only = %t) AS\n%s\nWITH NO DATA;\nCOMMENT ON VIEW %s IS %s",
				qv, !ca.Realtime, pl.aggregateQuery(ca), qv, literal(pl.aggregateComment(ca))),
		})
		if pl.hasRows[ca.Source] {
			pl.add(Step{
				Description: fmt.Sprintf("materialize %s from the rows already in %s", ca.Name, ca.Source),
				SQL:         "CALL refresh_continuous_aggregate(" + literal(qv) + ", NULL, NULL)",
				Standalone:  true,
			})
		}
		la = &liveAggregate{realtime: ca.Realtime}
	} else if ownerOf(la.comment) != pl.spec.Name {
		pl.add(Step{
			Description: fmt.Sprintf("adopt continuous aggregate %s into spec %q (record the owner in its comment)", ca.Name, pl.spec.Name),
			SQL:         "COMMENT ON VIEW " + qv + " IS " + literal(pl.aggregateComment(ca)),
		})
	}
	if la.realtime != ca.Realtime {
		pl.add(Step{
			Description: fmt.Sprintf("set realtime of %s to %t", ca.Name, ca.Realtime),
			SQL:         fmt.Sprintf("ALTER MATERIALIZED VIEW %s SET (timescaledb.materialized_only = %t)", qv, !ca.Realtime),
		})
	}
	lit := literal(qv)
	remove := "SELECT remove_continuous_aggregate_policy(" + lit + ")"
	add := ""
	if r := ca.Refresh; r != nil {
		add = fmt.Sprintf("SELECT add_continuous_aggregate_policy(%s, start_offset => %s, end_offset => %s, schedule_interval => %s)",
			lit, r.StartOffset.SQL(), r.EndOffset.SQL(), r.ScheduleInterval.SQL())
	}
	switch {
	case la.refresh == nil && ca.Refresh == nil:
	case la.refresh == nil:
		pl.add(Step{Description: fmt.Sprintf("add refresh policy to %s: every %s, from %s to %s ago", ca.Name, ca.Refresh.ScheduleInterval, ca.Refresh.StartOffset, ca.Refresh.EndOffset), SQL: add})
	case ca.Refresh == nil:
		pl.add(Step{Description: fmt.Sprintf("remove refresh policy of %s (not in the spec)", ca.Name), SQL: remove})
	case !la.refresh.StartOffset.Equal(ca.Refresh.StartOffset) || !la.refresh.EndOffset.Equal(ca.Refresh.EndOffset) || !la.refresh.ScheduleInterval.Equal(ca.Refresh.ScheduleInterval):
		pl.add(Step{Description: fmt.Sprintf("change refresh policy of %s: every %s, from %s to %s ago", ca.Name, ca.Refresh.ScheduleInterval, ca.Refresh.StartOffset, ca.Refresh.EndOffset), SQL: remove + ";\n" + add})
	}
}
