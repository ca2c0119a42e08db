package history

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// plan is the page query of a Range against one table, worked out once.
//
// Its parameters are, in order: the Range's Args ($1 ... $k, so that Where
// is written with them as they are), the Match values, the lower and upper
// time bounds, in tail mode the settle interval, then after a position the
// position's time and keys, and last the page's limit.
type plan struct {
	timeCol column
	keys    []column
	out     []column
	// timeIndex and keyIndexes say which selected value holds the time
	// and each key's text.
	timeIndex  int
	keyIndexes []int
	// first reads from the lower bound; next reads after a position.
	first, next string
	// count counts the rows left, with the parameters of next or first
	// minus the limit.
	countFirst, countNext string
	// fixedArgs are Args and the Match values.
	fixedArgs []any
	follow    bool
}

func newPlan(t *table, r Range, follow bool) (*plan, error) {
	p := &plan{follow: follow}
	timeName := r.TimeColumn
	if timeName == "" {
		timeName = t.defaultTimeColumn()
	}
	if timeName == "" {
		return nil, fmt.Errorf("history: %s has no timestamptz column in its primary key or time dimension: set the time column", t.ident.Sanitize())
	}
	var ok bool
	if p.timeCol, ok = t.column(timeName); !ok {
		return nil, fmt.Errorf("history: %s has no column %q", t.ident.Sanitize(), timeName)
	}
	if p.timeCol.kind != kindTime {
		return nil, fmt.Errorf("history: time column %q is %s, not timestamp with time zone", timeName, p.timeCol.typeName)
	}
	keyNames := r.KeyColumns
	if len(keyNames) == 0 {
		if len(t.primaryKey) == 0 {
			return nil, fmt.Errorf("history: %s: %w", t.ident.Sanitize(), ErrNoKey)
		}
		keyNames = slices.DeleteFunc(slices.Clone(t.primaryKey), func(n string) bool { return n == timeName })
	}
	for _, name := range keyNames {
		c, ok := t.column(name)
		if !ok {
			return nil, fmt.Errorf("history: %s has no key column %q", t.ident.Sanitize(), name)
		}
		p.keys = append(p.keys, c)
	}
	if len(r.Columns) == 0 {
		p.out = t.columns
	}
	for _, name := range r.Columns {
		c, ok := t.column(name)
		if !ok {
			return nil, fmt.Errorf("history: %s has no column %q", t.ident.Sanitize(), name)
		}
		p.out = append(p.out, c)
	}

	// Select list: the emitted columns, in the form their kind wants, then
	// what the position needs and they do not hold: the time column
	// (binary) and the key columns as text. A text key or the time column
	// that is emitted anyway is read from its emitted value.
	var sel []string
	for _, c := range p.out {
		switch c.kind {
		case kindString, kindJSON:
			sel = append(sel, quote(c.name)+"::text")
		default:
			sel = append(sel, quote(c.name))
		}
	}
	emitted := func(name string, kinds ...columnKind) int {
		for i, c := range p.out {
			if c.name == name && slices.Contains(kinds, c.kind) {
				return i
			}
		}
		return -1
	}
	if p.timeIndex = emitted(p.timeCol.name, kindTime); p.timeIndex < 0 {
		p.timeIndex = len(sel)
		sel = append(sel, quote(p.timeCol.name))
	}
	for _, k := range p.keys {
		i := emitted(k.name, kindText, kindString)
		if i < 0 {
			i = len(sel)
			sel = append(sel, quote(k.name)+"::text")
		}
		p.keyIndexes = append(p.keyIndexes, i)
	}

	n := len(r.Args)
	param := func() string { n++; return "$" + strconv.Itoa(n) }
	var conds []string
	p.fixedArgs = append(p.fixedArgs, r.Args...)
	for _, m := range r.Match {
		c, ok := t.column(m.Column)
		if !ok {
			return nil, fmt.Errorf("history: %s has no column %q to match", t.ident.Sanitize(), m.Column)
		}
		conds = append(conds, quote(c.name)+" = "+param())
		p.fixedArgs = append(p.fixedArgs, m.Value)
	}
	if strings.TrimSpace(r.Where) != "" {
		conds = append(conds, "("+r.Where+")")
	}
	tq := quote(p.timeCol.name)
	conds = append(conds, tq+" >= "+param()+"::timestamptz")
	upper := param() + "::timestamptz"
	if follow {
		upper = "LEAST(" + upper + ", now() - " + param() + "::interval)"
	}
	conds = append(conds, tq+" < "+upper)
	from := "SELECT " + strings.Join(sel, ", ") + " FROM " + t.ident.Sanitize() + " WHERE "
	countFrom := "SELECT count(*) FROM " + t.ident.Sanitize() + " WHERE "
	// ORDER BY would take a bare name for the output column of that name,
	// and the keys are selected twice: qualify them.
	qualified := func(name string) string { return t.ident.Sanitize() + "." + quote(name) }
	order := []string{qualified(p.timeCol.name)}
	for _, k := range p.keys {
		order = append(order, qualified(k.name))
	}
	orderBy := " ORDER BY " + strings.Join(order, ", ")

	base := strings.Join(conds, " AND ")
	p.countFirst = countFrom + base
	p.first = from + base + orderBy + " LIMIT " + param()
	n-- // the limit's number is reused after the position's parameters

	after := []string{param() + "::timestamptz"}
	for _, k := range p.keys {
		after = append(after, param()+"::"+k.typeName)
	}
	next := base + " AND (" + strings.Join(order, ", ") + ") > (" + strings.Join(after, ", ") + ")"
	p.countNext = countFrom + next
	p.next = from + next + orderBy + " LIMIT " + param()
	return p, nil
}

// args returns the parameters of a query: after is nil for first.
func (p *plan) args(r *Range, after *Position, settle time.Duration, limit int) []any {
	args := slices.Clone(p.fixedArgs)
	lower := pgtype.Timestamptz{InfinityModifier: pgtype.NegativeInfinity, Valid: true}
	if !r.From.IsZero() {
		lower = pgtype.Timestamptz{Time: r.From, Valid: true}
	}
	if after != nil && (r.From.IsZero() || after.Time.After(r.From)) {
		// Implied by the row comparison, but only a plain bound lets the
		// planner skip the chunks before it.
		lower = pgtype.Timestamptz{Time: after.Time, Valid: true}
	}
	upper := pgtype.Timestamptz{InfinityModifier: pgtype.Infinity, Valid: true}
	if !r.To.IsZero() {
		upper = pgtype.Timestamptz{Time: r.To, Valid: true}
	}
	args = append(args, lower, upper)
	if p.follow {
		args = append(args, settle)
	}
	if after != nil {
		args = append(args, after.Time)
		for _, k := range after.Key {
			args = append(args, k)
		}
	}
	if limit > 0 {
		args = append(args, limit)
	}
	return args
}

// defaultTimeColumn is the hypertable's time dimension, or else the first
// timestamptz column of the primary key.
func (t *table) defaultTimeColumn() string {
	if t.timeDimension != "" {
		return t.timeDimension
	}
	for _, name := range t.primaryKey {
		if c, ok := t.column(name); ok && c.kind == kindTime {
			return name
		}
	}
	return ""
}

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }
