package bench

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// The figures of one measurement, per 1,000 rows kept (the distinct valid
// messages) for CPU, and per message consumed for the rate.
func (e *jobEnv) msgsPerSecond(m measurement) float64 {
	return float64(e.data.messages) / m.wall.Seconds()
}

func (e *jobEnv) perKRow(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000 / (float64(e.data.valid) / 1000)
}

func rollbacksPer100(m measurement) float64 {
	if m.batches == 0 || math.IsNaN(m.batches) {
		return math.NaN()
	}
	return 100 * float64(m.rollbacks) / m.batches
}

// reference is the reference's measurement of round, if taken.
func (e *jobEnv) reference(round int) (measurement, bool) {
	for _, m := range e.results[jobCases[caseReference].name] {
		if m.round == round {
			return m, true
		}
	}
	return measurement{}, false
}

// report gives one round's figures to the benchmark framework, so that
// scripts/bench-table.sh lists them.
func (e *jobEnv) report(b *testing.B, c jobCase, m measurement, round int) {
	b.ReportMetric(e.msgsPerSecond(m), "msgs/s")
	if ref, ok := e.reference(round); ok && c.kind != caseReference {
		b.ReportMetric(e.msgsPerSecond(m)/e.msgsPerSecond(ref), "vs-ref-msgs/s")
	}
	b.ReportMetric(e.perKRow(m.client), "client-ms/krow")
	if e.postmaster != 0 {
		b.ReportMetric(e.perKRow(m.postgres), "pg-ms/krow")
	}
	b.ReportMetric(e.perKRow(m.harness), "harness-ms/krow")
	b.ReportMetric(m.batches, "batches")
	b.ReportMetric(float64(m.rollbacks), "rollbacks")
	if r := rollbacksPer100(m); !math.IsNaN(r) {
		b.ReportMetric(r, "rollbacks/100batches")
	}
}

// reportMedians reports a case's medians over the rounds, with no time
// of its own.
func (e *jobEnv) reportMedians(b *testing.B, c jobCase) {
	s := e.series(c)
	b.ReportMetric(0, "ns/op")
	for _, f := range []struct {
		unit   string
		values []float64
	}{
		{"msgs/s", s.rate}, {"vs-ref-msgs/s", s.rateRatio}, {"client-ms/krow", s.client},
		{"pg-ms/krow", s.postgres}, {"harness-ms/krow", s.harness}, {"rollbacks/100batches", s.rollbacks},
	} {
		if sp := spreadOf(f.values); !math.IsNaN(sp.median) {
			b.ReportMetric(sp.median, f.unit)
		}
	}
}

// series are a case's figures over the rounds, ratios to the reference of
// the same round.
type series struct {
	rate, rateRatio, client, clientRatio, postgres, postgresRatio, harness, batches, rollbacks []float64
}

func (e *jobEnv) series(c jobCase) series {
	var s series
	for _, m := range e.results[c.name] {
		s.rate = append(s.rate, e.msgsPerSecond(m))
		s.client = append(s.client, e.perKRow(m.client))
		if e.postmaster != 0 {
			s.postgres = append(s.postgres, e.perKRow(m.postgres))
		}
		s.harness = append(s.harness, e.perKRow(m.harness))
		s.batches = append(s.batches, m.batches)
		s.rollbacks = append(s.rollbacks, rollbacksPer100(m))
		if ref, ok := e.reference(m.round); ok && c.kind != caseReference {
			s.rateRatio = append(s.rateRatio, e.msgsPerSecond(m)/e.msgsPerSecond(ref))
			s.clientRatio = append(s.clientRatio, float64(m.client)/float64(ref.client))
			if e.postmaster != 0 {
				s.postgresRatio = append(s.postgresRatio, float64(m.postgres)/float64(ref.postgres))
			}
		}
	}
	return s
}

// spread is the median and range of a few figures.
type spread struct{ median, min, max float64 }

func spreadOf(values []float64) spread {
	var v []float64
	for _, x := range values {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return spread{math.NaN(), math.NaN(), math.NaN()}
	}
	slices.Sort(v)
	median := v[len(v)/2]
	if len(v)%2 == 0 {
		median = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{median, v[0], v[len(v)-1]}
}

// format prints the median and, over more than one round, the range.
func (s spread) format(verb string) string {
	if math.IsNaN(s.median) {
		return "—"
	}
	if s.min == s.max {
		return fmt.Sprintf(verb, s.median)
	}
	return fmt.Sprintf(verb+" ("+verb+"–"+verb+")", s.median, s.min, s.max)
}

// table is BenchmarkJob's result: the cases' medians and ranges over the
// rounds, then the targets of issue 12.
func (e *jobEnv) table() string {
	var sb strings.Builder
	rounds := len(e.results[jobCases[caseReference].name])
	fmt.Fprintf(&sb, "\nJob benchmark (BenchmarkJob): %d price messages (%d distinct valid, %d re-sends of earlier ones, %d invalid) in %d partitions → crypto_prices (%s); %d round(s), each case with a fresh group and table; median (min–max) over the rounds.\n\n",
		e.data.messages, e.data.valid, e.data.resent, e.data.invalid, jobPartitions, e.kind, rounds)
	sb.WriteString("| case | msgs/s | ÷ reference, same round | client CPU ms / 1k rows | PostgreSQL CPU ms / 1k rows | bench process CPU ms / 1k rows | batches | rollbacks / 100 batches |\n")
	sb.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range jobCases {
		s := e.series(c)
		fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c.label,
			spreadOf(s.rate).format("%.0f"), spreadOf(s.rateRatio).format("%.2f"),
			spreadOf(s.client).format("%.2f"), spreadOf(s.postgres).format("%.2f"), spreadOf(s.harness).format("%.2f"),
			spreadOf(s.batches).format("%.0f"), spreadOf(s.rollbacks).format("%.2f"))
	}
	sb.WriteString(`
- msgs/s: messages consumed (valid, re-sent and invalid) ÷ the wall time from starting the process to seeing the whole topic committed.
- CPU from /proc, per 1,000 rows kept (the distinct valid messages): the client process's utime+stime, read after the commit is seen and before the stop; PostgreSQL's is the postmaster's own, its exited children's (cutime+cstime) and its live children's, over the same time, so background workers (autovacuum, the checkpointer, TimescaleDB's schedulers) are included; the bench process runs the kfake broker and the harness.
- batches: qiflow's qiflow_timescale_batches_total from /metrics; the reference's transactions, as it prints them. Rollbacks: the delta of pg_stat_database.xact_rollback of the case's database.
`)

	price, mapping := e.series(jobCases[caseQiflowPrice]), e.series(jobCases[caseQiflowMapping])
	sb.WriteString("\n| measure | target | measured (median, min–max) | met? |\n|---|---|---|---|\n")
	row := func(measure, target, measured string, met string) {
		fmt.Fprintf(&sb, "| %s | %s | %s | %s |\n", measure, target, measured, met)
	}
	atMost := func(s spread, limit float64) string {
		if math.IsNaN(s.median) {
			return "—"
		}
		return yesNo(s.median <= limit)
	}
	client, pg, rate, rb := spreadOf(price.clientRatio), spreadOf(price.postgresRatio), spreadOf(price.rateRatio), spreadOf(price.rollbacks)
	row("client CPU per row", "≤ 1.5 × the reference's",
		fmt.Sprintf("%s × (%s ms / 1k rows)", client.format("%.2f"), spreadOf(price.client).format("%.2f")), atMost(client, 1.5))
	row("PostgreSQL CPU per row", "≤ 1.05 × the reference's",
		fmt.Sprintf("%s × (%s ms / 1k rows)", pg.format("%.2f"), spreadOf(price.postgres).format("%.2f")), atMost(pg, 1.05))
	rateMet := "—"
	if !math.IsNaN(rate.median) {
		rateMet = yesNo(rate.median >= 0.9)
	}
	row("rows/s", "≥ 0.9 × the reference's, same run",
		fmt.Sprintf("%s × (%s msgs/s)", rate.format("%.2f"), spreadOf(price.rate).format("%.0f")), rateMet)
	row("rollbacks on the 2 % re-send data set", "≤ 1 per 100 batches", rb.format("%.2f")+" per 100 batches", atMost(rb, 1))
	p99 := "—"
	p99Met := "—"
	if e.p99 > 0 {
		p99, p99Met = fmt.Sprintf("%.1f ms (p50 %.1f ms; 1 run)", e.p99, e.p50), yesNo(e.p99 < 50)
	}
	row("p99 latency at 5,000 msgs/s", "< 50 ms", p99, p99Met)
	row("mapping path: client CPU per row", "—",
		fmt.Sprintf("%s × the reference's (%s ms / 1k rows)", spreadOf(mapping.clientRatio).format("%.2f"), spreadOf(mapping.client).format("%.2f")), "—")
	sb.WriteString("\nThe qiflow rows are prices.yaml (format: price); ratios are taken per round against the reference of the same round. Targets are printed, not asserted.\n")
	return sb.String()
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
