package timescale_output

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/qicore/qiflow/internal/result"
)

// conflictMode is what a row whose key already exists does.
type conflictMode string

const (
	conflictError     conflictMode = "error"
	conflictDoNothing conflictMode = "do_nothing"
	conflictDoUpdate  conflictMode = "do_update"
)

// stagedRun is how many batches go straight to the staged path after a
// batch met a conflict. Replays arrive in runs, so paying for a failed
// COPY on each of them would waste more than staging costs.
const stagedRun = 16

// row is one row to write and the index of its message in the batch.
type row struct {
	index  int
	values []any
}

// rowSource streams rows to CopyFrom without building a [][]any.
type rowSource struct {
	rows []row
	next int
}

func (s *rowSource) Next() bool {
	s.next++
	return s.next <= len(s.rows)
}

func (s *rowSource) Values() ([]any, error) { return s.rows[s.next-1].values, nil }

func (s *rowSource) Err() error { return nil }

// pathStats counts what one write did.
type pathStats struct {
	fastBatches, stagedBatches int
	conflicts                  int64
}

// copier writes rows into one table: binary COPY when it can, a staged
// INSERT … ON CONFLICT when rows may already exist, and row isolation when
// the database rejects some rows of a batch.
type copier struct {
	pool    *pgxpool.Pool
	target  pgx.Identifier
	columns []string
	mode    conflictMode

	createStage string
	stage       pgx.Identifier
	insert      string

	stagedLeft atomic.Int32
}

func newCopier(pool *pgxpool.Pool, t *table, columns, conflictColumns []string, mode conflictMode) *copier {
	stageName := "qiflow_stage_" + strings.Join(t.ident, "_")
	c := &copier{
		pool:    pool,
		target:  t.ident,
		columns: columns,
		mode:    mode,
		stage:   pgx.Identifier{stageName},
		createStage: fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s (LIKE %s INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
			pgx.Identifier{stageName}.Sanitize(), t.ident.Sanitize()),
	}
	quoted := quoteAll(columns)
	insert := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s ON CONFLICT (%s) ",
		t.ident.Sanitize(), quoted, quoted, c.stage.Sanitize(), quoteAll(conflictColumns))
	var updates []string
	for _, col := range columns {
		if !contains(conflictColumns, col) {
			q := pgx.Identifier{col}.Sanitize()
			updates = append(updates, q+" = EXCLUDED."+q)
		}
	}
	if mode == conflictDoUpdate && len(updates) > 0 {
		insert += "DO UPDATE SET " + strings.Join(updates, ", ")
	} else {
		insert += "DO NOTHING"
	}
	c.insert = insert
	return c
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(q, ", ")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// writeIsolating writes rows. When the database rejects the batch for a
// BUSINESS reason it splits the batch until each rejected row stands alone,
// writes the rest, and records the rejected rows in failed. Rows written are
// recorded in written, so a retry after a transient error skips them. A
// transient or fatal error is returned as is.
func (c *copier) writeIsolating(ctx context.Context, rows []row, failed map[int]error, written map[int]bool, stats *pathStats) error {
	err := c.writeOnce(ctx, rows, stats)
	if err == nil {
		for _, r := range rows {
			written[r.index] = true
		}
		return nil
	}
	classified := result.Classify(err)
	if classified.Action() != result.DeadLetter {
		return err
	}
	if len(rows) == 1 {
		failed[rows[0].index] = classified
		return nil
	}
	mid := len(rows) / 2
	if err := c.writeIsolating(ctx, rows[:mid], failed, written, stats); err != nil {
		return err
	}
	return c.writeIsolating(ctx, rows[mid:], failed, written, stats)
}

// writeOnce writes rows in one statement: a plain COPY unless recent
// batches met conflicts, and the staged upsert when the COPY meets one.
func (c *copier) writeOnce(ctx context.Context, rows []row, stats *pathStats) error {
	if c.mode == conflictError || c.stagedLeft.Load() <= 0 {
		_, err := c.pool.CopyFrom(ctx, c.target, c.columns, &rowSource{rows: rows})
		if err == nil {
			stats.fastBatches++
			return nil
		}
		if c.mode == conflictError || !isUniqueViolation(err) {
			return fmt.Errorf("copy into %s: %w", c.target.Sanitize(), err)
		}
		c.stagedLeft.Store(stagedRun)
	}
	inserted, err := c.stageAndInsert(ctx, rows)
	if err != nil {
		return err
	}
	stats.stagedBatches++
	if conflicts := int64(len(rows)) - inserted; conflicts > 0 && c.mode == conflictDoNothing {
		stats.conflicts += conflicts
		c.stagedLeft.Store(stagedRun)
	} else {
		c.stagedLeft.Add(-1)
	}
	return nil
}

// stageAndInsert copies rows into a per-connection temporary table and
// moves them into the target with INSERT … ON CONFLICT, in one transaction.
// It returns how many rows the INSERT affected.
func (c *copier) stageAndInsert(ctx context.Context, rows []row) (int64, error) {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin staged upsert: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, c.createStage); err != nil {
		return 0, fmt.Errorf("create staging table: %w", err)
	}
	if _, err := tx.CopyFrom(ctx, c.stage, c.columns, &rowSource{rows: rows}); err != nil {
		return 0, fmt.Errorf("copy into staging table for %s: %w", c.target.Sanitize(), err)
	}
	tag, err := tx.Exec(ctx, c.insert)
	if err != nil {
		return 0, fmt.Errorf("upsert into %s: %w", c.target.Sanitize(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("commit upsert into %s: %w", c.target.Sanitize(), err)
	}
	return tag.RowsAffected(), nil
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// backoff is the wait before the attempt-th retry of a transient failure.
func backoff(attempt int, initial, maximum time.Duration) time.Duration {
	return min(initial<<min(attempt-1, 16), maximum)
}
