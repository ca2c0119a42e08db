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

// conflictRun is how many batches are written in conflict mode after a
// batch met an existing key. Replays arrive in runs, so paying for a failed
// COPY on each of them would waste more than the conflict path costs.
const conflictRun = 16

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

	// existing finds which keys of a batch are stored already; keyIdx are
	// the key columns' positions in a row.
	existing string
	keyIdx   []int

	conflictLeft atomic.Int32
}

func newCopier(pool *pgxpool.Pool, t *table, columns, conflictColumns []string, keyIdx []int, mode conflictMode) *copier {
	stageName := "qiflow_stage_" + strings.Join(t.ident, "_")
	c := &copier{
		pool:    pool,
		target:  t.ident,
		columns: columns,
		mode:    mode,
		keyIdx:  keyIdx,
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

	var arrays []string
	for i, k := range conflictColumns {
		arrays = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, t.columns[k].typeName))
	}
	c.existing = fmt.Sprintf("SELECT %[1]s FROM unnest(%[2]s) AS u(%[1]s) JOIN %[3]s USING (%[1]s)",
		quoteAll(conflictColumns), strings.Join(arrays, ", "), t.ident.Sanitize())
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

// writeOnce writes rows in one statement: a plain COPY, unless recent
// batches met existing keys, and the conflict path when the COPY meets one.
func (c *copier) writeOnce(ctx context.Context, rows []row, stats *pathStats) error {
	if c.mode == conflictError || c.conflictLeft.Load() <= 0 {
		err := c.copy(ctx, rows)
		if err == nil {
			stats.fastBatches++
			return nil
		}
		if c.mode == conflictError || !isUniqueViolation(err) {
			return err
		}
		c.conflictLeft.Store(conflictRun)
	}
	stats.stagedBatches++
	var conflicts int64
	var err error
	if c.mode == conflictDoUpdate {
		var affected int64
		affected, err = c.stageAndInsert(ctx, rows)
		conflicts = int64(len(rows)) - affected
	} else {
		conflicts, err = c.copyNew(ctx, rows)
	}
	if err != nil {
		return err
	}
	stats.conflicts += conflicts
	if conflicts > 0 {
		c.conflictLeft.Store(conflictRun)
	} else {
		c.conflictLeft.Add(-1)
	}
	return nil
}

func (c *copier) copy(ctx context.Context, rows []row) error {
	if _, err := c.pool.CopyFrom(ctx, c.target, c.columns, &rowSource{rows: rows}); err != nil {
		return fmt.Errorf("copy into %s: %w", c.target.Sanitize(), err)
	}
	return nil
}

// copyNew writes with do_nothing semantics: it looks up which keys exist,
// COPYs only the other rows, and falls back to the staged upsert should a
// concurrent writer store one of them meanwhile. It returns how many rows
// were skipped as existing.
func (c *copier) copyNew(ctx context.Context, rows []row) (int64, error) {
	stored, err := c.storedKeys(ctx, rows)
	if err != nil {
		return 0, err
	}
	fresh := rows
	if len(stored) > 0 {
		fresh = make([]row, 0, len(rows)-len(stored))
		for _, r := range rows {
			if !stored[rowKey(r.values, c.keyIdx)] {
				fresh = append(fresh, r)
			}
		}
	}
	skipped := int64(len(rows) - len(fresh))
	if len(fresh) == 0 {
		return skipped, nil
	}
	err = c.copy(ctx, fresh)
	if err == nil || !isUniqueViolation(err) {
		return skipped, err
	}
	inserted, err := c.stageAndInsert(ctx, fresh)
	return int64(len(rows)) - inserted, err
}

// storedKeys returns the keys of rows that are in the table already.
func (c *copier) storedKeys(ctx context.Context, rows []row) (map[string]bool, error) {
	args := make([]any, len(c.keyIdx))
	for k, i := range c.keyIdx {
		values := make([]any, len(rows))
		for j, r := range rows {
			values[j] = r.values[i]
		}
		args[k] = values
	}
	found, err := c.pool.Query(ctx, c.existing, args...)
	if err != nil {
		return nil, fmt.Errorf("look up existing keys in %s: %w", c.target.Sanitize(), err)
	}
	defer found.Close()
	stored := map[string]bool{}
	for found.Next() {
		values, err := found.Values()
		if err != nil {
			return nil, fmt.Errorf("look up existing keys in %s: %w", c.target.Sanitize(), err)
		}
		stored[rowKey(values, nil)] = true
	}
	return stored, found.Err()
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
