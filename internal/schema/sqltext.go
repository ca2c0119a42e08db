package schema

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// This file holds the only words from a spec that reach SQL other than
// quoted identifiers: column types, defaults and intervals. Each is checked
// against a closed vocabulary and rewritten into one canonical spelling, the
// one PostgreSQL's catalog reports, so that comparing the spec with the live
// database is a string comparison.

// identPattern is what the spec accepts as a table, column, index or
// aggregate name: an unquoted PostgreSQL identifier in lower case, so that
// names read the same in SQL with or without quotes.
var identPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// quote returns name as a quoted SQL identifier.
func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// quoteQualified returns schema.name as a quoted SQL identifier.
func quoteQualified(schema, name string) string { return pgx.Identifier{schema, name}.Sanitize() }

// literal returns s as a SQL string literal. A backslash makes it an
// escape-string literal (E'…') with the backslash doubled, so the value
// stays the same whatever standard_conforming_strings says.
func literal(s string) string {
	quoted := "'" + strings.ReplaceAll(s, "'", "''") + "'"
	if strings.Contains(s, `\`) {
		return "E" + strings.ReplaceAll(quoted, `\`, `\\`)
	}
	return quoted
}

// isNumericType reports whether a canonical column type holds numbers.
func isNumericType(t string) bool {
	for _, prefix := range []string{"smallint", "integer", "bigint", "numeric", "real", "double precision"} {
		if strings.HasPrefix(t, prefix) {
			return true
		}
	}
	return false
}

// typeRules maps a spelling of a column type to format_type's spelling.
// Verb %[n]s of the canonical form is group n-1 of the pattern.
var typeRules = []struct {
	pattern   *regexp.Regexp
	canonical string
}{
	{regexp.MustCompile(`^(timestamptz|timestamp\s+with\s+time\s+zone)$`), "timestamp with time zone"},
	{regexp.MustCompile(`^(timestamp|timestamp\s+without\s+time\s+zone)$`), "timestamp without time zone"},
	{regexp.MustCompile(`^(varchar|character\s+varying)\s*\(\s*([0-9]{1,5})\s*\)$`), "character varying(%[3]s)"},
	{regexp.MustCompile(`^(numeric|decimal)\s*\(\s*([0-9]{1,4})\s*,\s*([0-9]{1,4})\s*\)$`), "numeric(%[3]s,%[4]s)"},
	{regexp.MustCompile(`^(numeric|decimal)\s*\(\s*([0-9]{1,4})\s*\)$`), "numeric(%[3]s,0)"},
	{regexp.MustCompile(`^(numeric|decimal)$`), "numeric"},
	{regexp.MustCompile(`^(text)$`), "text"},
	{regexp.MustCompile(`^(integer|int|int4)$`), "integer"},
	{regexp.MustCompile(`^(bigint|int8)$`), "bigint"},
	{regexp.MustCompile(`^(smallint|int2)$`), "smallint"},
	{regexp.MustCompile(`^(boolean|bool)$`), "boolean"},
	{regexp.MustCompile(`^(double\s+precision|float8)$`), "double precision"},
	{regexp.MustCompile(`^(real|float4)$`), "real"},
	{regexp.MustCompile(`^(date)$`), "date"},
	{regexp.MustCompile(`^(jsonb)$`), "jsonb"},
	{regexp.MustCompile(`^(uuid)$`), "uuid"},
}

// canonicalType returns the format_type spelling of a column type, or an
// error naming the accepted types.
func canonicalType(s string) (string, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	for _, r := range typeRules {
		m := r.pattern.FindStringSubmatch(t)
		if m == nil {
			continue
		}
		args := make([]any, len(m))
		for i, g := range m {
			args[i] = g
		}
		canon := r.canonical
		if strings.Contains(canon, "%") {
			canon = fmt.Sprintf(canon, args...)
		}
		if len(m) > 2 && strings.HasPrefix(canon, "numeric(") {
			p, _ := strconv.Atoi(m[2])
			sc := 0
			if len(m) > 3 {
				sc, _ = strconv.Atoi(m[3])
			}
			if p < 1 || p > 1000 || sc > p {
				return "", fmt.Errorf("type %q: precision must be 1..1000 and scale at most the precision", s)
			}
		}
		if canon == "character varying(0)" {
			return "", fmt.Errorf("type %q: length must be at least 1", s)
		}
		return canon, nil
	}
	return "", fmt.Errorf("unsupported column type %q (use timestamptz, timestamp, date, text, varchar(n), numeric(p,s), integer, bigint, smallint, boolean, real, double precision, jsonb or uuid)", s)
}

var (
	numberPattern     = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?$`)
	stringLitPattern  = regexp.MustCompile(`^'([^']|'')*'$`)
	trailingCast      = regexp.MustCompile(`::[a-z ]+(\([0-9, ]+\))?(\[\])?$`)
	defaultFunctionOK = map[string]string{
		"now()":             "now()",
		"current_timestamp": "CURRENT_TIMESTAMP",
		"true":              "true",
		"false":             "false",
	}
)

// canonicalDefault checks a column default from the spec: now(),
// CURRENT_TIMESTAMP, true, false, a number or a 'quoted string'. Anything
// else could run arbitrary SQL and is refused.
func canonicalDefault(s string) (string, error) {
	t := strings.TrimSpace(s)
	if c, ok := defaultFunctionOK[strings.ToLower(t)]; ok {
		return c, nil
	}
	if numberPattern.MatchString(t) || stringLitPattern.MatchString(t) {
		return t, nil
	}
	return "", fmt.Errorf("unsupported default %q (use now(), CURRENT_TIMESTAMP, true, false, a number without leading zeros or a 'quoted string')", s)
}

// catalogDefault rewrites pg_get_expr's rendering of a default into the
// spelling canonicalDefault gives: 'global'::character varying becomes
// 'global', and a quoted negative number of a numeric column loses its
// quotes.
func catalogDefault(expr, columnType string) string {
	t := strings.TrimSpace(expr)
	for {
		stripped := trailingCast.ReplaceAllString(t, "")
		if stripped == t {
			break
		}
		t = strings.TrimSpace(stripped)
	}
	if strings.HasPrefix(t, "(") && strings.HasSuffix(t, ")") {
		t = strings.TrimSpace(t[1 : len(t)-1])
	}
	if isNumericType(columnType) && stringLitPattern.MatchString(t) && numberPattern.MatchString(t[1:len(t)-1]) && strings.HasPrefix(t, "'-") {
		t = t[1 : len(t)-1]
	}
	return t
}

// Interval is a PostgreSQL interval from the spec, kept as the three fields
// PostgreSQL itself stores so that it compares exactly with the catalog.
type Interval struct {
	Months int32
	Days   int32
	Micros int64
}

// intervalUnits maps the accepted unit words to their size.
var intervalUnits = map[string]Interval{
	"microsecond": {Micros: 1}, "millisecond": {Micros: 1_000},
	"second": {Micros: 1_000_000}, "sec": {Micros: 1_000_000},
	"minute": {Micros: 60_000_000}, "min": {Micros: 60_000_000},
	"hour": {Micros: 3_600_000_000}, "day": {Days: 1}, "week": {Days: 7},
	"month": {Months: 1}, "mon": {Months: 1}, "year": {Months: 12},
}

var intervalPart = regexp.MustCompile(`^([0-9]{1,6})\s*([a-z]+)$`)

// ParseInterval reads "7 days", "1 hour", "90 minutes" or "1 day 12 hours".
// Units are microsecond, millisecond, second, minute, hour, day, week, month
// and year, singular or plural. The result is positive.
func ParseInterval(s string) (Interval, error) {
	fields := strings.Fields(strings.ToLower(s))
	if len(fields) == 0 {
		return Interval{}, fmt.Errorf("empty interval")
	}
	var iv Interval
	for i := 0; i < len(fields); i++ {
		part := fields[i]
		if i+1 < len(fields) && !intervalPart.MatchString(part) {
			part += fields[i+1]
			i++
		}
		m := intervalPart.FindStringSubmatch(part)
		if m == nil {
			return Interval{}, fmt.Errorf("bad interval %q (want e.g. \"7 days\" or \"1 hour\")", s)
		}
		unit, ok := intervalUnits[strings.TrimSuffix(m[2], "s")]
		if !ok {
			unit, ok = intervalUnits[m[2]]
		}
		if !ok {
			return Interval{}, fmt.Errorf("bad interval %q: unknown unit %q", s, m[2])
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		iv.Months += int32(n) * unit.Months
		iv.Days += int32(n) * unit.Days
		iv.Micros += n * unit.Micros
	}
	if iv.IsZero() {
		return Interval{}, fmt.Errorf("bad interval %q: must be positive", s)
	}
	return iv, nil
}

// IsZero reports whether the interval is empty.
func (iv Interval) IsZero() bool { return iv == Interval{} }

// String renders the interval in PostgreSQL's input syntax, e.g. "7 days"
// or "1 day 1 hour".
func (iv Interval) String() string {
	var parts []string
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.FormatInt(n, 10) + " " + unit + "s"
	}
	if iv.Months != 0 {
		if iv.Months%12 == 0 {
			parts = append(parts, plural(int64(iv.Months/12), "year"))
		} else {
			parts = append(parts, plural(int64(iv.Months), "month"))
		}
	}
	if iv.Days != 0 {
		parts = append(parts, plural(int64(iv.Days), "day"))
	}
	if us := iv.Micros; us != 0 {
		for _, u := range []struct {
			size int64
			name string
		}{{3_600_000_000, "hour"}, {60_000_000, "minute"}, {1_000_000, "second"}, {1_000, "millisecond"}, {1, "microsecond"}} {
			if us%u.size == 0 {
				parts = append(parts, plural(us/u.size, u.name))
				break
			}
		}
	}
	if len(parts) == 0 {
		return "0 seconds"
	}
	return strings.Join(parts, " ")
}

// SQL renders the interval as a SQL literal.
func (iv Interval) SQL() string { return "INTERVAL " + literal(iv.String()) }

// Equal reports whether two intervals have the same length, counting a
// month as 30 days. TimescaleDB stores some intervals (the chunk interval)
// in microseconds only, so "1 day" comes back as "24:00:00".
func (iv Interval) Equal(o Interval) bool { return iv.approx() == o.approx() }

// approx returns the interval's length in microseconds, counting a month as
// 30 days, for ordering intervals (is a retention shorter?).
func (iv Interval) approx() int64 {
	return int64(iv.Months)*30*86_400_000_000 + int64(iv.Days)*86_400_000_000 + iv.Micros
}

// intervalOf converts what pgx scanned from the catalog.
func intervalOf(v pgtype.Interval) Interval {
	return Interval{Months: v.Months, Days: v.Days, Micros: v.Microseconds}
}
