package schema

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// parser walks the YAML node tree by hand rather than decoding into
// structs, so that every error can name its line and an unknown key is an
// error wherever it appears. It collects errors and goes on, so that one
// run reports every problem of a file.
type parser struct {
	file    string
	errs    []error
	keyLine map[*yaml.Node]int // value node → line of its key
}

func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d: %s", p.file, line, fmt.Sprintf(format, args...)))
}

// line returns the line where a value's key is, which is where a reader
// looks for it (a block mapping value starts on the next line).
func (p *parser) line(n *yaml.Node) int {
	if l, ok := p.keyLine[n]; ok {
		return l
	}
	return n.Line
}

// removedFeatures are keys that configured features TimescaleDB no longer
// has; they get a clear refusal instead of "unknown key".
var removedFeatures = map[string]string{
	"distributed":        "distributed hypertables were removed in TimescaleDB 2.14",
	"data_nodes":         "distributed hypertables (data nodes) were removed in TimescaleDB 2.14",
	"replication_factor": "distributed hypertables (replication) were removed in TimescaleDB 2.14",
}

// mapping returns the values of a mapping node by key, after checking that
// every key is one of allowed and appears once. It returns nil if n is not
// a mapping.
func (p *parser) mapping(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		p.errorf(p.line(n), "%s must be a mapping", what)
		return nil
	}
	out := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case removedFeatures[k.Value] != "":
			p.errorf(k.Line, "%s: %s is not supported: %s", what, k.Value, removedFeatures[k.Value])
		case !slices.Contains(allowed, k.Value):
			hint := ""
			if strings.HasSuffix(k.Value, ")") {
				hint = `; inside { } a comma ends the value, so quote types such as "numeric(20,8)"`
			}
			p.errorf(k.Line, "%s: unknown key %q (known keys: %s)%s", what, k.Value, strings.Join(allowed, ", "), hint)
		case out[k.Value] != nil:
			p.errorf(k.Line, "%s: key %q appears twice", what, k.Value)
		default:
			out[k.Value] = v
			p.keyLine[v] = k.Line
		}
	}
	return out
}

func (p *parser) str(n *yaml.Node, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(p.line(n), "%s must be a string", what)
		return ""
	}
	return n.Value
}

func (p *parser) boolean(n *yaml.Node, what string) bool {
	if n == nil {
		return false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		p.errorf(p.line(n), "%s must be true or false", what)
		return false
	}
	return n.Value == "true"
}

func (p *parser) list(n *yaml.Node, what string) []*yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(p.line(n), "%s must be a list", what)
		return nil
	}
	return n.Content
}

func (p *parser) strs(n *yaml.Node, what string) []string {
	var out []string
	for _, item := range p.list(n, what) {
		out = append(out, p.str(item, what+" item"))
	}
	return out
}

// ident reads a name that will become a SQL identifier.
func (p *parser) ident(n *yaml.Node, what string) string {
	s := p.str(n, what)
	if n != nil && !identPattern.MatchString(s) {
		p.errorf(p.line(n), "%s %q must be a lower-case SQL name: letters, digits and _, at most 63, not starting with a digit", what, s)
	}
	return s
}

// columnRefs reads a list of column names of table t, each of which must
// exist.
func (p *parser) columnRefs(n *yaml.Node, t *Table, what string) []string {
	var out []string
	for _, item := range p.list(n, what) {
		name := p.ident(item, what+" item")
		p.columnOf(item, t, what, name)
		out = append(out, name)
	}
	return out
}

// columnOf reports an error at n unless name is a column of t.
func (p *parser) columnOf(n *yaml.Node, t *Table, what, name string) *Column {
	c := t.Column(name)
	if c == nil && name != "" {
		p.errorf(p.line(n), "table %s: %s names unknown column %q", t.Name, what, name)
	}
	return c
}

func (p *parser) interval(n *yaml.Node, what string) Interval {
	s := p.str(n, what)
	if s == "" {
		return Interval{}
	}
	iv, err := ParseInterval(s)
	if err != nil {
		p.errorf(p.line(n), "%s: %v", what, err)
	}
	return iv
}

// required reports the keys missing from mapping m, found at node n.
func (p *parser) required(m map[string]*yaml.Node, n *yaml.Node, what string, keys ...string) {
	for _, k := range keys {
		if m != nil && m[k] == nil {
			p.errorf(p.line(n), "%s: %s is required", what, k)
		}
	}
}

// noDuplicates reports names that appear twice.
func (p *parser) noDuplicates(n *yaml.Node, what string, names []string) {
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] && name != "" {
			p.errorf(p.line(n), "%s %s is defined twice", what, name)
		}
		seen[name] = true
	}
}

var yamlErrorLine = regexp.MustCompile(`^line (\d+): (.*)$`)

func (p *parser) parse(data []byte) *Spec {
	p.keyLine = map[*yaml.Node]int{}
	spec := &Spec{File: p.file, Name: specNameFromFile(p.file), Schema: "public"}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3 says "yaml: line N: reason".
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlErrorLine.FindStringSubmatch(msg); m != nil {
			p.errs = append(p.errs, fmt.Errorf("%s:%s: %s", p.file, m[1], m[2]))
		} else {
			p.errorf(1, "%s", msg)
		}
		return spec
	}
	if len(doc.Content) == 0 {
		p.errorf(1, "the spec is empty")
		return spec
	}
	top := doc.Content[0]
	root := p.mapping(top, "spec", "version", "name", "schema", "tables", "continuous_aggregates")
	if root == nil {
		return spec
	}
	if v := root["version"]; v != nil && v.Value != "1" {
		p.errorf(v.Line, "version must be 1")
	}
	if n := root["name"]; n != nil {
		spec.Name = p.str(n, "name")
		if !specNamePattern.MatchString(spec.Name) {
			p.errorf(p.line(n), "name %q must be lower-case letters, digits, _, . and -, at most 63, not starting with . or -", spec.Name)
		}
	}
	if n := root["schema"]; n != nil {
		spec.Schema = p.ident(n, "schema")
	}
	p.required(root, top, "spec", "tables")
	var names []string
	for _, tn := range p.list(root["tables"], "tables") {
		t := p.table(tn)
		spec.Tables = append(spec.Tables, t)
		names = append(names, t.Name)
	}
	if n := root["tables"]; n != nil {
		p.noDuplicates(n, "table", names)
	}
	names = nil
	for _, cn := range p.list(root["continuous_aggregates"], "continuous_aggregates") {
		ca := p.aggregate(cn, spec)
		spec.ContinuousAggregates = append(spec.ContinuousAggregates, ca)
		names = append(names, ca.Name)
	}
	if n := root["continuous_aggregates"]; n != nil {
		p.noDuplicates(n, "continuous aggregate", names)
	}
	return spec
}

func (p *parser) table(n *yaml.Node) Table {
	m := p.mapping(n, "table", "name", "columns", "primary_key", "checks", "indexes", "hypertable")
	if m == nil {
		return Table{}
	}
	p.required(m, n, "table", "name", "columns")
	t := Table{Name: p.ident(m["name"], "table name")}
	what := "table " + t.Name
	var names []string
	for _, cn := range p.list(m["columns"], what+" columns") {
		c := p.column(cn, what)
		t.Columns = append(t.Columns, c)
		names = append(names, c.Name)
	}
	if cn := m["columns"]; cn != nil {
		p.noDuplicates(cn, what+": column", names)
		if len(t.Columns) == 0 {
			p.errorf(p.line(cn), "%s: no columns", what)
		}
	}
	t.PrimaryKey = p.columnRefs(m["primary_key"], &t, "primary_key")
	for _, name := range t.PrimaryKey {
		if c := t.Column(name); c != nil {
			c.NotNull = true // as PostgreSQL makes it
		}
	}
	for _, cn := range p.list(m["checks"], what+" checks") {
		cm := p.mapping(cn, what+" check", "name", "column", "in")
		if cm == nil {
			continue
		}
		p.required(cm, cn, what+" check", "name", "column", "in")
		c := Check{Name: p.ident(cm["name"], "check name"), Column: p.ident(cm["column"], "check column"), In: p.strs(cm["in"], "check in")}
		if cm["in"] != nil && len(c.In) == 0 {
			p.errorf(p.line(cm["in"]), "check %s: in must list at least one value", c.Name)
		}
		if cm["column"] != nil {
			p.columnOf(cm["column"], &t, "check "+c.Name, c.Column)
		}
		t.Checks = append(t.Checks, c)
	}
	for _, in := range p.list(m["indexes"], what+" indexes") {
		t.Indexes = append(t.Indexes, p.index(in, &t))
	}
	if hn := m["hypertable"]; hn != nil {
		t.Hypertable = p.hypertable(hn, &t, m["primary_key"])
	}
	return t
}

func (p *parser) column(n *yaml.Node, table string) Column {
	m := p.mapping(n, table+" column", "name", "type", "not_null", "default")
	if m == nil {
		return Column{}
	}
	p.required(m, n, table+" column", "name", "type")
	c := Column{Name: p.ident(m["name"], "column name"), NotNull: p.boolean(m["not_null"], "not_null")}
	if tn := m["type"]; tn != nil {
		t, err := canonicalType(p.str(tn, "type"))
		if err != nil {
			p.errorf(p.line(tn), "column %s: %v", c.Name, err)
		}
		c.Type = t
	}
	if dn := m["default"]; dn != nil {
		c.Default = p.defaultValue(dn, c.Name, c.Type)
	}
	return c
}

// defaultValue reads a column default. A YAML number or boolean is used as
// is, now() and CURRENT_TIMESTAMP are the functions they name, and any
// other string is a string literal: `default: global` means 'global'.
//
// A quoted number for a numeric column, or a quoted true or false for a
// boolean one, is the number or boolean: PostgreSQL stores it so, and
// quoting it would make every plan see a change.
func (p *parser) defaultValue(n *yaml.Node, column, columnType string) string {
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int", "!!float", "!!bool":
			d, err := canonicalDefault(n.Value)
			if err != nil {
				p.errorf(p.line(n), "column %s: %v", column, err)
			}
			return d
		case "!!str":
			v := strings.TrimSpace(n.Value)
			if d, ok := defaultFunctionOK[strings.ToLower(v)]; ok && d != "true" && d != "false" {
				return d
			}
			if (isNumericType(columnType) && numberPattern.MatchString(v)) ||
				(columnType == "boolean" && (strings.EqualFold(v, "true") || strings.EqualFold(v, "false"))) {
				return strings.ToLower(v)
			}
			return literal(n.Value)
		}
	}
	p.errorf(p.line(n), "column %s: default must be a number, a boolean, now(), CURRENT_TIMESTAMP or a string", column)
	return ""
}

var indexColumnPattern = regexp.MustCompile(`^([a-z_][a-z0-9_]*)(\s+(?i:(asc|desc)))?$`)

func (p *parser) index(n *yaml.Node, t *Table) Index {
	what := "table " + t.Name + " index"
	m := p.mapping(n, what, "name", "columns", "unique")
	if m == nil {
		return Index{}
	}
	p.required(m, n, what, "name", "columns")
	ix := Index{Name: p.ident(m["name"], "index name"), Unique: p.boolean(m["unique"], "unique")}
	for _, cn := range p.list(m["columns"], "index columns") {
		s := strings.TrimSpace(p.str(cn, "index column"))
		mm := indexColumnPattern.FindStringSubmatch(s)
		if mm == nil {
			p.errorf(p.line(cn), "index %s: column %q must be a column name, optionally followed by ASC or DESC", ix.Name, s)
			continue
		}
		p.columnOf(cn, t, "index "+ix.Name, mm[1])
		ix.Columns = append(ix.Columns, IndexColumn{Name: mm[1], Desc: strings.EqualFold(mm[3], "desc")})
	}
	if m["columns"] != nil && len(ix.Columns) == 0 {
		p.errorf(p.line(m["columns"]), "index %s: no columns", ix.Name)
	}
	return ix
}

// timeTypes are the column types a hypertable may be partitioned on.
var timeTypes = []string{"timestamp with time zone", "timestamp without time zone", "date"}

func (p *parser) hypertable(n *yaml.Node, t *Table, pkNode *yaml.Node) *Hypertable {
	what := t.Name + " hypertable"
	m := p.mapping(n, what, "time_column", "chunk_interval", "columnstore", "retention")
	if m == nil {
		return &Hypertable{}
	}
	p.required(m, n, what, "time_column", "chunk_interval")
	h := &Hypertable{TimeColumn: p.ident(m["time_column"], "time_column"), ChunkInterval: p.interval(m["chunk_interval"], "chunk_interval")}
	if tn := m["time_column"]; tn != nil && h.TimeColumn != "" {
		tc := t.Column(h.TimeColumn)
		switch {
		case tc == nil:
			p.errorf(p.line(tn), "table %s: hypertable time_column %q is not a column of the table", t.Name, h.TimeColumn)
		case !slices.Contains(timeTypes, tc.Type):
			p.errorf(p.line(tn), "table %s: hypertable time_column %s must be timestamptz, timestamp or date, not %s", t.Name, tc.Name, tc.Type)
		case !tc.NotNull:
			p.errorf(p.line(tn), "table %s: hypertable time_column %s must be not_null", t.Name, tc.Name)
		case pkNode != nil && !slices.Contains(t.PrimaryKey, h.TimeColumn):
			p.errorf(p.line(pkNode), "table %s: the primary key must include the hypertable time_column %s", t.Name, h.TimeColumn)
		}
	}
	if h.ChunkInterval.Months != 0 {
		p.errorf(p.line(m["chunk_interval"]), "chunk_interval must be in fixed units (days, hours, ...), not months or years")
	}
	if cn := m["columnstore"]; cn != nil {
		cm := p.mapping(cn, t.Name+" columnstore", "segmentby", "orderby", "after")
		if cm != nil {
			cs := &Columnstore{SegmentBy: p.columnRefs(cm["segmentby"], t, "columnstore segmentby"), After: p.interval(cm["after"], "columnstore after")}
			for _, on := range p.list(cm["orderby"], "orderby") {
				o := p.orderColumn(on)
				p.columnOf(on, t, "columnstore orderby", o.Name)
				if slices.Contains(cs.SegmentBy, o.Name) {
					p.errorf(p.line(on), "table %s: column %s cannot be in both segmentby and orderby", t.Name, o.Name)
				}
				cs.OrderBy = append(cs.OrderBy, o)
			}
			h.Columnstore = cs
		}
	}
	if rn := m["retention"]; rn != nil {
		rm := p.mapping(rn, t.Name+" retention", "drop_after")
		if rm != nil {
			p.required(rm, rn, t.Name+" retention", "drop_after")
			h.Retention = &Retention{DropAfter: p.interval(rm["drop_after"], "drop_after")}
		}
	}
	return h
}

var orderColumnPattern = regexp.MustCompile(`(?i)^([a-z_][a-z0-9_]*)(\s+(asc|desc))?(\s+nulls\s+(first|last))?$`)

func (p *parser) orderColumn(n *yaml.Node) OrderColumn {
	s := strings.TrimSpace(p.str(n, "orderby item"))
	m := orderColumnPattern.FindStringSubmatch(s)
	if m == nil || m[1] != strings.ToLower(m[1]) {
		p.errorf(p.line(n), "orderby %q must be a column name, optionally followed by ASC or DESC and NULLS FIRST or NULLS LAST", s)
		return OrderColumn{}
	}
	o := OrderColumn{Name: m[1], Desc: strings.EqualFold(m[3], "desc")}
	o.NullsFirst = o.Desc
	if m[5] != "" {
		o.NullsFirst = strings.EqualFold(m[5], "first")
	}
	return o
}

func (p *parser) aggregate(n *yaml.Node, spec *Spec) ContinuousAggregate {
	m := p.mapping(n, "continuous aggregate", "name", "source", "bucket", "group_by", "where", "columns", "refresh", "realtime")
	if m == nil {
		return ContinuousAggregate{}
	}
	p.required(m, n, "continuous aggregate", "name", "source", "bucket", "columns")
	ca := ContinuousAggregate{
		Name:     p.ident(m["name"], "continuous aggregate name"),
		Source:   p.ident(m["source"], "source"),
		Bucket:   p.interval(m["bucket"], "bucket"),
		Realtime: p.boolean(m["realtime"], "realtime"),
	}
	what := "continuous aggregate " + ca.Name
	if spec.Table(ca.Name) != nil {
		p.errorf(p.line(m["name"]), "%s: a table has the same name", what)
	}
	src := spec.Table(ca.Source)
	switch {
	case m["source"] == nil || ca.Source == "":
		src = &Table{} // reported as required
	case src == nil:
		p.errorf(p.line(m["source"]), "%s: source %q is not a table of this spec", what, ca.Source)
		src = &Table{}
	case src.Hypertable == nil:
		p.errorf(p.line(m["source"]), "%s: source %s is not a hypertable", what, ca.Source)
	}
	check := func(n *yaml.Node, name string) {
		if src.Name != "" {
			p.columnOf(n, src, what, name)
		}
	}
	used := map[string]bool{"bucket": true}
	for _, gn := range p.list(m["group_by"], "group_by") {
		g := p.ident(gn, "group_by item")
		check(gn, g)
		used[g] = true
		ca.GroupBy = append(ca.GroupBy, g)
	}
	if wn := m["where"]; wn != nil {
		wm := p.mapping(wn, what+" where", "column", "in")
		if wm != nil {
			p.required(wm, wn, what+" where", "column", "in")
			ca.Where = &Filter{Column: p.ident(wm["column"], "where column"), In: p.strs(wm["in"], "where in")}
			if wm["in"] != nil && len(ca.Where.In) == 0 {
				p.errorf(p.line(wm["in"]), "where: in must list at least one value")
			}
			if wm["column"] != nil {
				check(wm["column"], ca.Where.Column)
			}
		}
	}
	for _, cn := range p.list(m["columns"], what+" columns") {
		cm := p.mapping(cn, what+" column", "name", "function", "column")
		if cm == nil {
			continue
		}
		p.required(cm, cn, what+" column", "name", "function")
		a := Aggregate{Name: p.ident(cm["name"], "column name"), Function: p.str(cm["function"], "function"), Column: p.ident(cm["column"], "column")}
		switch {
		case cm["function"] != nil && !slices.Contains(aggregateFunctions, a.Function):
			p.errorf(p.line(cm["function"]), "%s: unknown function %q (use %s)", what, a.Function, strings.Join(aggregateFunctions, ", "))
		case a.Column == "" && a.Function != "count":
			p.errorf(cn.Line, "%s: column %s: function %s needs a column", what, a.Name, a.Function)
		case cm["column"] != nil:
			check(cm["column"], a.Column)
		}
		if used[a.Name] {
			p.errorf(cn.Line, "%s: column name %s is used twice (bucket and group_by columns count)", what, a.Name)
		}
		used[a.Name] = true
		ca.Columns = append(ca.Columns, a)
	}
	if cn := m["columns"]; cn != nil && len(ca.Columns) == 0 {
		p.errorf(p.line(cn), "%s: no columns", what)
	}
	if rn := m["refresh"]; rn != nil {
		rm := p.mapping(rn, what+" refresh", "start_offset", "end_offset", "schedule_interval")
		if rm != nil {
			p.required(rm, rn, what+" refresh", "start_offset", "end_offset", "schedule_interval")
			r := &Refresh{
				StartOffset:      p.interval(rm["start_offset"], "start_offset"),
				EndOffset:        p.interval(rm["end_offset"], "end_offset"),
				ScheduleInterval: p.interval(rm["schedule_interval"], "schedule_interval"),
			}
			if r.StartOffset.approx()-r.EndOffset.approx() < 2*ca.Bucket.approx() {
				p.errorf(p.line(rn), "%s: the refresh window (start_offset - end_offset) must cover at least two buckets", what)
			}
			ca.Refresh = r
		}
	}
	return ca
}
