package schema

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/qicore/qiflow/internal/result"
)

// applyLockKey is the pg_advisory_lock key every qiflow instance takes
// before planning and applying, so that instances starting together apply
// the schema once, one after the other: the second finds nothing to do.
// The value spells "qiflow" in ASCII.
const applyLockKey int64 = 0x7169666c6f77

// unlockTimeout bounds releasing the advisory lock after the caller's
// context is done.
const unlockTimeout = 5 * time.Second

// ApplyOptions change how Apply runs.
type ApplyOptions struct {
	// AllowDestructive lets Apply run steps marked Destructive. Without it
	// a plan with such steps is refused before anything runs.
	AllowDestructive bool
	// Log, when set, receives the warnings and the line counting the
	// objects the spec leaves alone, then one line as each step starts
	// ("step 2/5: ...") and one as it ends, with its elapsed time, as they
	// happen: a slow step shows while it runs.
	Log func(string)
}

// ApplyReport is what Apply did.
type ApplyReport struct {
	// Plan is the plan Apply made under the lock and ran.
	Plan *PlanResult `json:"plan"`
	// Applied lists the steps that ran, in order. On error it holds the
	// steps that completed before it.
	Applied []Step `json:"applied"`
}

// ErrDestructiveRefused is the category and code of a plan refused because
// it holds destructive steps and AllowDestructive was not given.
var ErrDestructiveRefused = result.New(result.System, "destructive_change_refused", "destructive schema change refused")

// Apply makes the database behind conn match spec. It takes a session
// advisory lock, plans under it, refuses destructive steps unless allowed,
// then runs every step in one transaction, except the few TimescaleDB
// refuses inside one, which run after it on their own. A second Apply
// finds an empty plan and changes nothing.
//
// conn is used exclusively for the duration of the call; a caller with a
// pool passes an acquired connection's Conn(). Errors are categorised with
// internal/result: a lost connection is transient, a bad spec or a refused
// change stops.
func Apply(ctx context.Context, conn *pgx.Conn, spec *Spec, opts ApplyOptions) (rep *ApplyReport, err error) {
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			opts.Log(fmt.Sprintf(format, args...))
		}
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", applyLockKey); err != nil {
		return nil, classify(err, "take the schema advisory lock")
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if _, uerr := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", applyLockKey); uerr != nil && err == nil && !conn.IsClosed() {
			err = classify(uerr, "release the schema advisory lock")
		}
	}()

	plan, err := Plan(ctx, conn, spec)
	if err != nil {
		return nil, err
	}
	rep = &ApplyReport{Plan: plan}
	for _, w := range plan.Warnings {
		logf("WARNING: %s", w)
	}
	if line := plan.unmanagedSummary(); line != "" {
		logf("%s", line)
	}
	if bad := plan.Destructive(); len(bad) > 0 && !opts.AllowDestructive {
		descs := make([]string, len(bad))
		for i, s := range bad {
			descs[i] = s.Description
		}
		return rep, result.Wrap(ErrDestructiveRefused.Category, ErrDestructiveRefused.Code, nil,
			fmt.Sprintf("%s: refusing %d destructive change(s) without --allow-destructive: %s", spec.File, len(bad), strings.Join(descs, "; ")))
	}
	if plan.Empty() {
		logf("no changes: the database matches %s", spec.File)
		return rep, nil
	}

	var inTx, alone []Step
	for _, s := range plan.Steps {
		if s.Standalone {
			alone = append(alone, s)
		} else {
			inTx = append(inTx, s)
		}
	}
	n := len(plan.Steps)
	// run runs step k of n on db (the transaction or the connection),
	// saying when it starts and how long it took.
	run := func(db interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, k int, s Step, where string) error {
		logf("step %d/%d: %s%s ...", k, n, s.Description, where)
		began := time.Now()
		if _, err := db.Exec(ctx, s.SQL); err != nil {
			logf("step %d/%d failed after %s", k, n, elapsed(began))
			return err
		}
		logf("step %d/%d done in %s", k, n, elapsed(began))
		return nil
	}
	if len(inTx) > 0 {
		began := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			for i, s := range inTx {
				if err := run(tx, i+1, s, ""); err != nil {
					return classify(err, fmt.Sprintf("step %d/%d, %s", i+1, n, s.Description))
				}
			}
			return nil
		})
		if err != nil {
			logf("rolled back: %v", err)
			return rep, err
		}
		logf("committed %d step(s) in one transaction in %s", len(inTx), elapsed(began))
		rep.Applied = append(rep.Applied, inTx...)
	}
	for i, s := range alone {
		k := len(inTx) + i + 1
		if err := run(conn, k, s, " (outside the transaction)"); err != nil {
			err = classify(err, fmt.Sprintf("step %d/%d, %s (run on its own; the steps before it are applied)", k, n, s.Description))
			logf("failed %d/%d: %v", k, n, err)
			return rep, err
		}
		rep.Applied = append(rep.Applied, s)
	}
	return rep, nil
}

// elapsed renders the time since began for apply's progress lines.
func elapsed(began time.Time) time.Duration {
	d := time.Since(began)
	if d < time.Millisecond {
		return d.Round(time.Microsecond)
	}
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Millisecond)
}
