package schema

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// StatusReport is the live state of the spec's hypertables: chunks and
// their compression, policies and their last run, continuous aggregates
// and how far they are refreshed.
type StatusReport struct {
	Server      Server             `json:"server"`
	Hypertables []HypertableStatus `json:"hypertables"`
	// Warnings say what cannot be shown, e.g. without TimescaleDB.
	Warnings []string `json:"warnings,omitempty"`
}

// HypertableStatus is one table of the spec.
type HypertableStatus struct {
	Table string `json:"table"`
	// Hypertable is false for a table that is not (yet) a hypertable.
	Hypertable           bool              `json:"hypertable"`
	Chunks               []ChunkStatus     `json:"chunks"`
	CompressedChunks     int               `json:"compressed_chunks"`
	BeforeBytes          int64             `json:"before_compression_bytes"`
	AfterBytes           int64             `json:"after_compression_bytes"`
	CompressionRatio     float64           `json:"compression_ratio,omitempty"`
	Policies             []PolicyStatus    `json:"policies"`
	ContinuousAggregates []AggregateStatus `json:"continuous_aggregates"`
}

// ChunkStatus is one chunk. AfterBytes is zero for an uncompressed chunk,
// whose BeforeBytes is its current size.
type ChunkStatus struct {
	Name        string    `json:"name"`
	RangeStart  time.Time `json:"range_start"`
	RangeEnd    time.Time `json:"range_end"`
	Compressed  bool      `json:"compressed"`
	BeforeBytes int64     `json:"before_compression_bytes"`
	AfterBytes  int64     `json:"after_compression_bytes,omitempty"`
}

// PolicyStatus is one background job and its last run.
type PolicyStatus struct {
	JobID     int32      `json:"job_id"`
	Kind      string     `json:"kind"`
	Config    string     `json:"config"`
	Schedule  string     `json:"schedule_interval"`
	LastRun   *time.Time `json:"last_run_started_at,omitempty"`
	LastState string     `json:"last_run_status,omitempty"`
	NextStart *time.Time `json:"next_start,omitempty"`
	Failures  int64      `json:"total_failures"`
	// LastError is the job's most recent error from
	// timescaledb_information.job_errors, or nil when it never failed
	// (or the errors were pruned).
	LastError *JobError `json:"last_error,omitempty"`
}

// JobError is one failed run of a background job.
type JobError struct {
	At       time.Time `json:"at"`
	SQLState string    `json:"sqlstate,omitempty"`
	Message  string    `json:"message"`
}

// jobFailed is TimescaleDB's last_run_status of a failed run.
const jobFailed = "Failed"

// Failed reports whether the job's last run failed.
func (p PolicyStatus) Failed() bool { return p.LastState == jobFailed }

// AggregateStatus is one continuous aggregate over the hypertable.
type AggregateStatus struct {
	Name string `json:"name"`
	// RefreshedUpTo is the watermark: buckets before it are materialized.
	// Nil when it was never refreshed.
	RefreshedUpTo *time.Time     `json:"refreshed_up_to,omitempty"`
	Policies      []PolicyStatus `json:"policies"`
}

// policyKinds names TimescaleDB's policy procedures for people.
var policyKinds = map[string]string{
	"policy_compression":                  "columnstore",
	"policy_retention":                    "retention",
	"policy_refresh_continuous_aggregate": "refresh",
	"policy_reorder":                      "reorder",
}

// FailedJob is a policy whose last run failed, and what it belongs to.
type FailedJob struct {
	// Owner is the hypertable or continuous aggregate of the job.
	Owner  string
	Policy PolicyStatus
}

// FailedJobs lists the policies whose last run failed, in report order.
func (r *StatusReport) FailedJobs() []FailedJob {
	var out []FailedJob
	for _, h := range r.Hypertables {
		for _, p := range h.Policies {
			if p.Failed() {
				out = append(out, FailedJob{Owner: h.Table, Policy: p})
			}
		}
		for _, a := range h.ContinuousAggregates {
			for _, p := range a.Policies {
				if p.Failed() {
					out = append(out, FailedJob{Owner: a.Name, Policy: p})
				}
			}
		}
	}
	return out
}

// Status reads the state of every hypertable in spec. It changes nothing.
func Status(ctx context.Context, conn *pgx.Conn, spec *Spec) (*StatusReport, error) {
	srv, err := inspectServer(ctx, conn)
	if err != nil {
		return nil, classify(err, "status")
	}
	rep := &StatusReport{Server: srv}
	if srv.TimescaleDB == "" {
		rep.Warnings = append(rep.Warnings, "TimescaleDB is not created in this database: there are no chunks, policies or continuous aggregates to show")
	} else if !srv.Community() {
		rep.Warnings = append(rep.Warnings, "TimescaleDB's Apache-2 build has no columnstore, policies or continuous aggregates")
	}
	for _, t := range spec.Tables {
		if t.Hypertable == nil {
			continue
		}
		hs := HypertableStatus{Table: t.Name}
		if srv.TimescaleDB != "" {
			if err := hypertableStatus(ctx, conn, srv, spec.Schema, &hs); err != nil {
				return nil, classify(err, "status of "+t.Name)
			}
		}
		rep.Hypertables = append(rep.Hypertables, hs)
	}
	return rep, nil
}

func hypertableStatus(ctx context.Context, conn *pgx.Conn, srv Server, schema string, hs *HypertableStatus) error {
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = $1 AND hypertable_name = $2)`,
		schema, hs.Table).Scan(&hs.Hypertable); err != nil || !hs.Hypertable {
		return err
	}
	stats := "NULL::name AS chunk_name, NULL::bigint AS before_compression_total_bytes, NULL::bigint AS after_compression_total_bytes"
	from := "(SELECT " + stats + ") s"
	if srv.Community() {
		from = "chunk_compression_stats(" + literal(quoteQualified(schema, hs.Table)) + ") s"
	}
	rows, err := conn.Query(ctx, `
SELECT c.chunk_name::text, c.range_start, c.range_end, c.is_compressed,
       COALESCE(s.before_compression_total_bytes, pg_total_relation_size(format('%I.%I', c.chunk_schema, c.chunk_name)::regclass)),
       COALESCE(s.after_compression_total_bytes, 0)
FROM timescaledb_information.chunks c
LEFT JOIN `+from+` ON s.chunk_name = c.chunk_name
WHERE c.hypertable_schema = $1 AND c.hypertable_name = $2
ORDER BY c.range_start`, schema, hs.Table)
	if err != nil {
		return err
	}
	hs.Chunks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ChunkStatus, error) {
		var c ChunkStatus
		err := r.Scan(&c.Name, &c.RangeStart, &c.RangeEnd, &c.Compressed, &c.BeforeBytes, &c.AfterBytes)
		return c, err
	})
	if err != nil {
		return err
	}
	var before int64
	for _, c := range hs.Chunks {
		if c.Compressed {
			hs.CompressedChunks++
			before += c.BeforeBytes
			hs.AfterBytes += c.AfterBytes
		}
		hs.BeforeBytes += c.BeforeBytes
	}
	if before > 0 {
		hs.CompressionRatio = float64(hs.AfterBytes) / float64(before)
	}
	if hs.Policies, err = policies(ctx, conn, srv, schema, hs.Table); err != nil {
		return err
	}
	rows, err = conn.Query(ctx, `
SELECT ca.view_name::text,
       CASE WHEN w > -210866803200000000 THEN `+srv.functionsSchema()+`.to_timestamp(w) END
FROM timescaledb_information.continuous_aggregates ca
JOIN _timescaledb_catalog.continuous_agg cagg ON cagg.user_view_schema = ca.view_schema AND cagg.user_view_name = ca.view_name
CROSS JOIN LATERAL `+srv.functionsSchema()+`.cagg_watermark(cagg.mat_hypertable_id) w
WHERE ca.hypertable_schema = $1 AND ca.hypertable_name = $2
ORDER BY ca.view_name`, schema, hs.Table)
	if err != nil {
		return err
	}
	aggs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AggregateStatus, error) {
		var a AggregateStatus
		var w pgtype.Timestamptz
		err := r.Scan(&a.Name, &w)
		if w.Valid && w.InfinityModifier == pgtype.Finite {
			a.RefreshedUpTo = &w.Time
		}
		return a, err
	})
	if err != nil {
		return err
	}
	for i := range aggs {
		if aggs[i].Policies, err = policies(ctx, conn, srv, schema, aggs[i].Name); err != nil {
			return err
		}
	}
	hs.ContinuousAggregates = aggs
	return nil
}

// policies reads the jobs of a hypertable or continuous aggregate, with
// each job's last error where TimescaleDB keeps them (job_errors, 2.9+).
func policies(ctx context.Context, conn *pgx.Conn, srv Server, schema, name string) ([]PolicyStatus, error) {
	lastError := "NULL::timestamptz, NULL::text, NULL::text"
	from := ""
	if srv.atLeast(2, 9) {
		lastError = "e.finish_time, e.sqlerrcode, e.err_message"
		from = `
LEFT JOIN LATERAL (SELECT finish_time, sqlerrcode, err_message FROM timescaledb_information.job_errors
                   WHERE job_id = j.job_id ORDER BY finish_time DESC NULLS LAST LIMIT 1) e ON true`
	}
	rows, err := conn.Query(ctx, `
SELECT j.job_id, j.proc_name::text, COALESCE(j.config::text, ''), j.schedule_interval::text,
       s.last_run_started_at, COALESCE(s.last_run_status, ''), s.next_start, COALESCE(s.total_failures, 0),
       `+lastError+`
FROM timescaledb_information.jobs j
LEFT JOIN timescaledb_information.job_stats s ON s.job_id = j.job_id`+from+`
WHERE j.hypertable_schema = $1 AND j.hypertable_name = $2
ORDER BY j.job_id`, schema, name)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PolicyStatus, error) {
		var p PolicyStatus
		var last, next, errAt pgtype.Timestamptz
		var errCode, errMessage pgtype.Text
		err := r.Scan(&p.JobID, &p.Kind, &p.Config, &p.Schedule, &last, &p.LastState, &next, &p.Failures, &errAt, &errCode, &errMessage)
		if k, ok := policyKinds[p.Kind]; ok {
			p.Kind = k
		}
		if last.Valid && last.InfinityModifier == pgtype.Finite {
			p.LastRun = &last.Time
		}
		if next.Valid && next.InfinityModifier == pgtype.Finite {
			p.NextStart = &next.Time
		}
		if p.LastState == "" {
			p.LastState = "never run"
		}
		if errMessage.Valid {
			p.LastError = &JobError{SQLState: errCode.String, Message: errMessage.String}
			if errAt.Valid && errAt.InfinityModifier == pgtype.Finite {
				p.LastError.At = errAt.Time
			}
		}
		return p, err
	})
}

// String renders the report as tables for a terminal.
func (r *StatusReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", r.Server.describe())
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "WARNING: %s\n", w)
	}
	for _, h := range r.Hypertables {
		fmt.Fprintf(&b, "\n== %s", h.Table)
		if !h.Hypertable {
			b.WriteString(" (not a hypertable)\n")
			continue
		}
		fmt.Fprintf(&b, ": %d chunks, %d compressed, %s", len(h.Chunks), h.CompressedChunks, bytes(h.BeforeBytes))
		if h.CompressedChunks > 0 {
			fmt.Fprintf(&b, " before compression, %s after compressed chunks shrank to %.1f%%", bytes(h.AfterBytes), 100*h.CompressionRatio)
		}
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		if len(h.Chunks) > 0 {
			fmt.Fprintln(tw, "CHUNK\tFROM\tTO\tCOMPRESSED\tBEFORE\tAFTER\tRATIO")
			for _, c := range h.Chunks {
				after, ratio := "-", "-"
				if c.Compressed {
					after = bytes(c.AfterBytes)
					if c.BeforeBytes > 0 {
						ratio = fmt.Sprintf("%.1f%%", 100*float64(c.AfterBytes)/float64(c.BeforeBytes))
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\n", c.Name, c.RangeStart.UTC().Format(time.RFC3339), c.RangeEnd.UTC().Format(time.RFC3339), c.Compressed, bytes(c.BeforeBytes), after, ratio)
			}
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "POLICY\tJOB\tSCHEDULE\tLAST RUN\tSTATUS\tNEXT START\tFAILURES\tCONFIG")
		printPolicies := func(owner string, ps []PolicyStatus) {
			for _, p := range ps {
				fmt.Fprintf(tw, "%s%s\t%d\t%s\t%s\t%s\t%s\t%d\t%s\n", owner, p.Kind, p.JobID, p.Schedule, timeOrDash(p.LastRun), p.LastState, timeOrDash(p.NextStart), p.Failures, p.Config)
			}
		}
		printPolicies("", h.Policies)
		for _, a := range h.ContinuousAggregates {
			printPolicies(a.Name+" ", a.Policies)
		}
		if len(h.ContinuousAggregates) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "CONTINUOUS AGGREGATE\tREFRESHED UP TO")
			for _, a := range h.ContinuousAggregates {
				up := "never refreshed"
				if a.RefreshedUpTo != nil {
					up = a.RefreshedUpTo.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\n", a.Name, up)
			}
		}
		tw.Flush()
	}
	if failed := r.FailedJobs(); len(failed) > 0 {
		fmt.Fprintf(&b, "\n%d job(s) failed on their last run:\n", len(failed))
		for _, f := range failed {
			b.WriteString("  " + f.String() + "\n")
		}
	}
	return b.String()
}

// String says which job failed and why, in one line.
func (f FailedJob) String() string {
	s := fmt.Sprintf("job %d (%s of %s) failed %d time(s)", f.Policy.JobID, f.Policy.Kind, f.Owner, f.Policy.Failures)
	if e := f.Policy.LastError; e != nil {
		s += fmt.Sprintf("; last error at %s: %s", timeOrDash(&e.At), e.Message)
		if e.SQLState != "" {
			s += " (SQLSTATE " + e.SQLState + ")"
		}
	} else {
		s += "; TimescaleDB kept no error message (job_errors is pruned after a month, or this version has none)"
	}
	return s
}

func timeOrDash(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

// bytes renders a size in binary units.
func bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
