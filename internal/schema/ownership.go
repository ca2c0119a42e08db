package schema

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/qicore/qiflow/internal/result"
)

// Several specs may share one PostgreSQL schema (the shipped one and
// pipelines/examples/prices_exactly_once.schema.yaml both use public), so a
// spec manages only the tables and continuous aggregates it owns. The
// owner is recorded on the object itself, in its comment:
//
//	qiflow spec=<name>                  on a table
//	qiflow spec=<name> sha256:<query>   on a continuous aggregate
//
// The record lives and dies with the object: DROP removes it, a rename
// keeps it, pg_dump carries it, and no catalog table can fall out of step
// with the objects. docs/schema-ownership.md says why this was chosen.
//
// An object the spec declares and nobody owns (made by an older qiflow,
// which wrote no owner, or by hand) is adopted: the plan writes the record.
// An object another spec owns is refused, never taken over. An object the
// spec does not declare is dropped only if the spec owns it.

// specNamePattern is what a spec name may be: it goes into comments as one
// word.
var specNamePattern = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]{0,62}$`)

// specNameFromFile derives a spec's name from its file when the file has
// no name key: the base name without its extension, lower-cased, any
// character a name may not hold replaced by _. pipelines/schema.yaml and
// /setup/schema.yaml are both "schema", so the same spec keeps its identity
// wherever it is deployed.
func specNameFromFile(file string) string {
	base := strings.ToLower(strings.TrimSuffix(filepath.Base(file), filepath.Ext(file)))
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-' {
			return r
		}
		return '_'
	}, base)
	if len(name) > 63 {
		name = name[:63]
	}
	if !specNamePattern.MatchString(name) {
		return "schema"
	}
	return name
}

// ownerOf returns the spec named by a qiflow comment, or "" when the
// comment records no owner (none, a hand-written one, or one written by a
// qiflow older than ownership records).
func ownerOf(comment string) string {
	fields := strings.Fields(comment)
	if len(fields) < 2 || fields[0] != managedMarker {
		return ""
	}
	for _, f := range fields[1:] {
		if name, ok := strings.CutPrefix(f, "spec="); ok {
			return name
		}
	}
	return ""
}

// fingerprintOf returns the sha256:… word of an aggregate's comment, or "".
func fingerprintOf(comment string) string {
	fields := strings.Fields(comment)
	if len(fields) < 2 || fields[0] != managedMarker {
		return ""
	}
	for _, f := range fields[1:] {
		if strings.HasPrefix(f, "sha256:") {
			return f
		}
	}
	return ""
}

// ownerComment is the ownership record of spec: a table's whole comment,
// and the start of a continuous aggregate's.
func ownerComment(spec string) string { return managedMarker + " spec=" + spec }

// ObjectKindTable and ObjectKindContinuousAggregate are the kinds of
// Object: the objects a spec owns.
const (
	ObjectKindTable               = "table"
	ObjectKindContinuousAggregate = "continuous aggregate"
)

// Object is a table or continuous aggregate of the managed schema that the
// plan leaves alone because this spec does not manage it.
type Object struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Owner is the spec recorded in the object's comment, or "" when none
	// is.
	Owner string `json:"owner,omitempty"`
}

// ErrOwnedByAnotherSpec is the category and code of a plan refused because
// the spec declares a table or continuous aggregate that another spec
// owns: two specs never manage one object.
var ErrOwnedByAnotherSpec = result.New(result.System, "schema_object_owned_by_another_spec", "schema object owned by another spec")

// schemaExists reports whether the PostgreSQL schema name exists.
func schemaExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", name).Scan(&ok); err != nil {
		return false, fmt.Errorf("inspect schema %s: %w", name, err)
	}
	return ok, nil
}

// inspectTableComments returns every table of schema with its comment
// ("" for none).
func inspectTableComments(ctx context.Context, conn *pgx.Conn, schema string) (map[string]string, error) {
	rows, err := conn.Query(ctx, `
SELECT c.relname::text, COALESCE(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition`, schema)
	if err != nil {
		return nil, fmt.Errorf("inspect tables of %s: %w", schema, err)
	}
	out := map[string]string{}
	for rows.Next() {
		var name, comment string
		if err := rows.Scan(&name, &comment); err != nil {
			return nil, fmt.Errorf("inspect tables of %s: %w", schema, err)
		}
		out[name] = comment
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("inspect tables of %s: %w", schema, err)
	}
	return out, nil
}

// divideByOwner refuses the plan when the spec declares an object another
// spec owns, lists the objects this spec leaves alone, and warns about
// tables the spec owns but no longer declares (qiflow never drops a table).
func (pl *planner) divideByOwner(tables map[string]string, aggs map[string]*liveAggregate) error {
	me := pl.spec.Name
	var conflicts []string
	for _, name := range sortedKeys(tables) {
		owner := ownerOf(tables[name])
		switch {
		case pl.spec.Table(name) != nil:
			if owner != "" && owner != me {
				conflicts = append(conflicts, fmt.Sprintf("table %s belongs to spec %q", name, owner))
			}
		case owner == me:
			pl.plan.Warnings = append(pl.plan.Warnings, fmt.Sprintf(
				"table %s belongs to spec %q but is no longer in it; qiflow never drops a table: drop it by hand (DROP TABLE %s) or add it back",
				name, me, pl.table(name)))
		default:
			pl.plan.Unmanaged = append(pl.plan.Unmanaged, Object{Kind: ObjectKindTable, Name: name, Owner: owner})
		}
	}
	for _, name := range sortedKeys(aggs) {
		owner := ownerOf(aggs[name].comment)
		switch {
		case pl.spec.aggregate(name) != nil:
			if owner != "" && owner != me {
				conflicts = append(conflicts, fmt.Sprintf("continuous aggregate %s belongs to spec %q", name, owner))
			}
		case owner != me:
			pl.plan.Unmanaged = append(pl.plan.Unmanaged, Object{Kind: ObjectKindContinuousAggregate, Name: name, Owner: owner})
		}
	}
	if len(conflicts) > 0 {
		return result.Wrap(ErrOwnedByAnotherSpec.Category, ErrOwnedByAnotherSpec.Code, nil, fmt.Sprintf(
			"%s (spec %q): %s; a spec manages only its own objects: remove them from this spec, or, if it is the same spec under another file name, add \"name: <that spec>\" to it",
			pl.spec.File, me, strings.Join(conflicts, "; ")))
	}
	return nil
}

// adoptTable records this spec as the owner of a table it declares that
// has no owner yet.
func (pl *planner) adoptTable(name, comment string) {
	if ownerOf(comment) == pl.spec.Name {
		return
	}
	desc := fmt.Sprintf("adopt table %s into spec %q (record the owner in its comment)", name, pl.spec.Name)
	if comment != "" && !strings.HasPrefix(comment, managedMarker) {
		desc += fmt.Sprintf("; replaces the comment %q", comment)
	}
	pl.add(Step{Description: desc, SQL: "COMMENT ON TABLE " + pl.table(name) + " IS " + literal(ownerComment(pl.spec.Name))})
}

// unmanagedSummary is the one line plan and apply print about the objects
// the spec leaves alone, or "" when there are none.
func (p *PlanResult) unmanagedSummary() string {
	if len(p.Unmanaged) == 0 {
		return ""
	}
	byOwner := map[string]int{}
	for _, o := range p.Unmanaged {
		byOwner[o.Owner]++
	}
	owners := sortedKeys(byOwner)
	sort.SliceStable(owners, func(i, j int) bool { return owners[i] != "" && owners[j] == "" })
	parts := make([]string, len(owners))
	for i, o := range owners {
		if o == "" {
			parts[i] = fmt.Sprintf("%d with no owner", byOwner[o])
		} else {
			parts[i] = fmt.Sprintf("%d owned by spec %q", byOwner[o], o)
		}
	}
	return fmt.Sprintf("Not managed by spec %q, left alone: %d object(s) in schema %s (%s)", p.Spec, len(p.Unmanaged), p.Schema, strings.Join(parts, ", "))
}
