package timescale_output

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
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

// pathStats counts what one write did. inserted, updated and conflicts are
// as the database reported them: a COPY's row count, and of the rows an
// INSERT … ON CONFLICT was given, those it inserted, updated or skipped.
type pathStats struct {
	fastBatches, stagedBatches   int
	inserted, updated, conflicts int64
	// rollbacks counts COPYs that met a stored key or TimescaleDB's
	// decompression limit and were redone on the conflict path.
	rollbacks int
}

// copier writes rows into one table: binary COPY when it can, a staged
// INSERT … ON CONFLICT when rows may already exist, and row isolation when
// the database rejects some rows of a batch.
type copier struct {
	pool    *pgxpool.Pool
	target  pgx.Identifier
	columns []string
	mode    conflictMode

	createStage []string // once per connection
	stage       pgx.Identifier
	insert      string
	// copyTarget and copyStage are the COPY statements of the binary
	// tuples the rows hold, into the table and into the staging table.
	copyTarget, copyStage string
	// upsertCounts is set when insert returns how many rows it inserted and
	// how many it updated (do_update), rather than a plain command tag.
	upsertCounts bool

	// existing finds which rows of a batch have keys stored already: it
	// joins the key columns, passed as one array per column, to the table,
	// and returns the positions in the arrays that matched.
	existing string
	key      []keyPart

	conflictLeft atomic.Int32
	// unlimitedLeft is how many more staged writes lift TimescaleDB's
	// decompression limit from the start, after one met it.
	unlimitedLeft atomic.Int32
}

// stageOrdinal is the staging table's extra column: the position of a row
// in the COPY, so that the INSERT … SELECT writes rows in the order they
// were sorted (sortByKey). Dropping it, and relying on a scan of the
// temporary table to return rows in the order they were copied, saved no
// measurable backend CPU (BenchmarkConflictPaths: 8.7 against 9.0 ms per
// 1,000 rows, within the machine's noise), so the order stays explicit.
const stageOrdinal = "qiflow_stage_ord"

// lookupOrdinal names the position of a key in existing's arrays.
const lookupOrdinal = "qiflow_ord"

func newCopier(pool *pgxpool.Pool, t *table, columns, conflictColumns []string, key []keyPart, mode conflictMode) *copier {
	stageName := "qiflow_stage_" + strings.Join(t.ident, "_")
	c := &copier{
		pool:    pool,
		target:  t.ident,
		columns: columns,
		mode:    mode,
		key:     key,
		stage:   pgx.Identifier{stageName},
	}
	quoted := quoteAll(columns)
	// The staging table holds just the columns written, without the
	// target's defaults and NOT NULLs: the target applies those once, on
	// INSERT, where LIKE … INCLUDING DEFAULTS had them evaluated twice per
	// row (now() for ingested_at, say).
	c.createStage = []string{
		fmt.Sprintf("CREATE TEMP TABLE IF NOT EXISTS %s ON COMMIT DELETE ROWS AS SELECT %s FROM %s WITH NO DATA",
			c.stage.Sanitize(), quoted, t.ident.Sanitize()),
		fmt.Sprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s bigint GENERATED ALWAYS AS IDENTITY", c.stage.Sanitize(), stageOrdinal),
	}
	if mode != conflictError {
		// Start on the conflict path: a (re)start replays what was not
		// committed, and those rows meet themselves. Without conflicts the
		// fast path comes back after conflictRun batches.
		c.conflictLeft.Store(conflictRun)
	}
	c.copyTarget = fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", t.ident.Sanitize(), quoted)
	c.copyStage = fmt.Sprintf("COPY %s (%s) FROM STDIN (FORMAT binary)", c.stage.Sanitize(), quoted)
	insert := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s ORDER BY %s ON CONFLICT (%s) ",
		t.ident.Sanitize(), quoted, quoted, c.stage.Sanitize(), stageOrdinal, quoteAll(conflictColumns))
	var updates []string
	for _, col := range columns {
		if !contains(conflictColumns, col) {
			q := pgx.Identifier{col}.Sanitize()
			updates = append(updates, q+" = EXCLUDED."+q)
		}
	}
	if mode == conflictDoUpdate && len(updates) > 0 {
		// A row's xmax is 0 when this statement inserted it, and the
		// updating transaction's id when it overwrote an existing row: the
		// one way to tell the two apart in a single statement.
		insert = "WITH upserted AS (" + insert + "DO UPDATE SET " + strings.Join(updates, ", ") +
			" RETURNING xmax = 0 AS inserted) SELECT count(*) FILTER (WHERE inserted), count(*) FROM upserted"
		c.upsertCounts = true
	} else {
		insert += "DO NOTHING"
	}
	c.insert = insert

	var arrays, match []string
	for i, k := range conflictColumns {
		arrays = append(arrays, fmt.Sprintf("$%d::%s[]", i+1, t.columns[k].typeName))
		q := pgx.Identifier{k}.Sanitize()
		match = append(match, "t."+q+" = u."+q)
	}
	// One index probe per key (LATERAL … LIMIT 1): a join let the planner
	// hash the whole chunk for every batch, a cost that grows with the
	// table (43 ms for 2,000 keys against 100,000 rows).
	c.existing = fmt.Sprintf("SELECT u.%[4]s FROM unnest(%[2]s) WITH ORDINALITY AS u(%[1]s, %[4]s) CROSS JOIN LATERAL (SELECT FROM %[3]s t WHERE %[5]s LIMIT 1) found",
		quoteAll(conflictColumns), strings.Join(arrays, ", "), t.ident.Sanitize(), lookupOrdinal, strings.Join(match, " AND "))
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

// isolation says how writeIsolating treats an error it cannot retry away.
type isolation struct {
	// unknownAfter is set once a write failed with a SQLSTATE qiflow does
	// not know this many times (result.UnknownSQLSTATE): from then on such
	// an error is isolated and dead-lettered like a BUSINESS one.
	unknownAfter int
}

// asRowFault is an error with a SQLSTATE qiflow does not know, which
// persisted through retries, taken for the fault of the row that meets it
// alone: a BUSINESS error, dead-lettered.
func asRowFault(classified *result.Error, retries int) *result.Error {
	isolated := *classified
	isolated.Category, isolated.Transient = result.Business, false
	isolated.Message = fmt.Sprintf("%s (SQLSTATE %s is unknown to qiflow; it persisted through %d retries and this row fails alone)",
		classified.Message, classified.Code, retries)
	return &isolated
}

// writeIsolating writes rows. When the database rejects the batch for a
// BUSINESS reason it splits the batch until each rejected row stands alone,
// writes the rest, and records the rejected rows in failed. Rows written are
// recorded in written, so a retry after a transient error skips them. A
// transient or fatal error is returned as is.
func (c *copier) writeIsolating(ctx context.Context, rows []row, failed map[int]error, written []bool, stats *pathStats, iso isolation) error {
	err := c.writeOnce(ctx, rows, stats)
	if err == nil {
		for _, r := range rows {
			written[r.index] = true
		}
		return nil
	}
	classified := result.Classify(err)
	switch {
	case classified.Action() == result.DeadLetter:
	case iso.unknownAfter > 0 && result.UnknownSQLSTATE(err):
		classified = asRowFault(classified, iso.unknownAfter)
	default:
		return err
	}
	if len(rows) == 1 {
		failed[rows[0].index] = classified
		return nil
	}
	mid := len(rows) / 2
	if err := c.writeIsolating(ctx, rows[:mid], failed, written, stats, iso); err != nil {
		return err
	}
	return c.writeIsolating(ctx, rows[mid:], failed, written, stats, iso)
}

// writeOnce writes rows in one transaction: a plain COPY, unless recent
// batches met existing keys, and the conflict path when the COPY meets one.
// A write that exceeds TimescaleDB's decompression limit is redone at once
// on the staged path with the limit lifted (see stageAndInsert).
func (c *copier) writeOnce(ctx context.Context, rows []row, stats *pathStats) error {
	if c.mode == conflictError || c.conflictLeft.Load() <= 0 {
		n, err := c.copy(ctx, rows)
		if err == nil {
			stats.fastBatches++
			stats.inserted += n
			return nil
		}
		switch {
		case c.mode != conflictError && isUniqueViolation(err):
			c.conflictLeft.Store(conflictRun)
		case c.mode != conflictError && isDecompressionLimit(err):
			c.unlimitedLeft.Store(conflictRun)
		default:
			return err
		}
		stats.rollbacks++
	}
	stats.stagedBatches++
	var w staged
	var err error
	if c.mode == conflictDoNothing && c.unlimitedLeft.Load() > 0 {
		// Compressed chunks: a lookup reads the stored keys without
		// decompressing them, where INSERT … ON CONFLICT would decompress
		// every batch it checks.
		w, err = c.copyNew(ctx, rows, stats)
	} else {
		// On uncompressed chunks staging costs the database what the
		// lookup does (BenchmarkConflictPaths, BenchmarkJob), and
		// concurrent writers of one key wait for each other instead of
		// rolling back, as the lookup's COPY does when another writer
		// stores one of its keys in between.
		w, err = c.stageAndInsert(ctx, rows)
	}
	if err != nil {
		return err
	}
	stats.inserted += w.inserted
	stats.updated += w.updated
	stats.conflicts += w.skipped
	if w.skipped > 0 || w.updated > 0 {
		c.conflictLeft.Store(conflictRun)
	} else {
		c.conflictLeft.Add(-1)
	}
	return nil
}

// staged is what a write on the conflict path did with its rows.
type staged struct{ inserted, updated, skipped int64 }

// copy writes rows with one COPY and returns how many it wrote.
func (c *copier) copy(ctx context.Context, rows []row) (int64, error) {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()
	n, err := copyRows(ctx, conn.Conn().PgConn(), c.copyTarget, rows)
	if err != nil {
		return 0, fmt.Errorf("copy into %s: %w", c.target.Sanitize(), err)
	}
	return n, nil
}

// copyNew writes with do_nothing semantics: it looks up which keys exist,
// COPYs only the other rows, and falls back to the staged upsert should a
// concurrent writer store one of them meanwhile, or should the COPY exceed
// TimescaleDB's decompression limit.
func (c *copier) copyNew(ctx context.Context, rows []row, stats *pathStats) (staged, error) {
	stored, err := c.storedKeys(ctx, rows)
	if err != nil {
		return staged{}, err
	}
	fresh := rows
	if len(stored) > 0 {
		fresh = make([]row, 0, len(rows)-len(stored))
		for i, r := range rows {
			if !stored[i] {
				fresh = append(fresh, r)
			}
		}
	}
	skipped := int64(len(rows) - len(fresh))
	if len(fresh) == 0 {
		return staged{skipped: skipped}, nil
	}
	n, err := c.copy(ctx, fresh)
	switch {
	case err == nil:
		return staged{inserted: n, skipped: skipped}, nil
	case isDecompressionLimit(err):
		c.unlimitedLeft.Store(conflictRun)
	case !isUniqueViolation(err):
		return staged{}, err
	}
	stats.rollbacks++
	w, err := c.stageAndInsert(ctx, fresh)
	w.skipped += skipped
	return w, err
}

// storedKeys returns the rows, by position, whose keys are in the table
// already. The key columns go as binary arrays of the fields the rows'
// tuples hold, so nothing is encoded twice.
func (c *copier) storedKeys(ctx context.Context, rows []row) (map[int]bool, error) {
	params := make([][]byte, len(c.key))
	formats := make([]int16, len(c.key))
	for k, part := range c.key {
		params[k] = appendArray(nil, part.col.typeOID, rows, part.idx)
		formats[k] = pgtype.BinaryFormatCode
	}
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()
	found := conn.Conn().PgConn().ExecParams(ctx, c.existing, params, nil, formats, []int16{pgtype.BinaryFormatCode})
	stored := map[int]bool{}
	for found.NextRow() {
		if v := found.Values()[0]; len(v) == 8 {
			stored[int(binary.BigEndian.Uint64(v))-1] = true // ordinals count from 1
		}
	}
	if _, err := found.Close(); err != nil {
		return nil, fmt.Errorf("look up existing keys in %s: %w", c.target.Sanitize(), err)
	}
	return stored, nil
}

// stageAndInsert copies rows into a per-connection temporary table and
// moves them into the target with INSERT … ON CONFLICT, in one transaction.
//
// An upsert into a compressed TimescaleDB chunk decompresses the compressed
// batches holding its keys, and TimescaleDB refuses a transaction that
// decompresses more than timescaledb.max_tuples_decompressed_per_dml_transaction
// tuples (SQLSTATE 53400; 100,000 by default). Splitting the batch would
// decompress the same tuples in more transactions, and pay again for each
// attempt that fails; instead the transaction is redone at once with the
// limit lifted for it alone (SET LOCAL), and so are the next conflictRun
// staged writes. The cost: one transaction decompresses at most the
// compressed batches (up to 1,000 tuples each) that hold its rows' keys.
func (c *copier) stageAndInsert(ctx context.Context, rows []row) (staged, error) {
	unlimited := c.unlimitedLeft.Load() > 0
	if unlimited {
		c.unlimitedLeft.Add(-1)
	}
	w, err := c.stageAndInsertTx(ctx, rows, unlimited)
	if !unlimited && isDecompressionLimit(err) {
		c.unlimitedLeft.Store(conflictRun)
		w, err = c.stageAndInsertTx(ctx, rows, true)
	}
	return w, err
}

// liftDecompressionLimit lifts TimescaleDB's limit for one transaction.
const liftDecompressionLimit = "SET LOCAL timescaledb.max_tuples_decompressed_per_dml_transaction = 0"

func (c *copier) stageAndInsertTx(ctx context.Context, rows []row, unlimited bool) (staged, error) {
	conn, err := c.pool.Acquire(ctx)
	if err != nil {
		return staged{}, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return staged{}, fmt.Errorf("begin staged upsert: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := c.ensureStage(ctx, tx); err != nil {
		return staged{}, err
	}
	if unlimited {
		if _, err := tx.Exec(ctx, liftDecompressionLimit); err != nil {
			return staged{}, fmt.Errorf("lift the decompression limit: %w", err)
		}
	}
	if _, err := copyRows(ctx, tx.Conn().PgConn(), c.copyStage, rows); err != nil {
		if isUndefinedTable(err) {
			// The session lost its staging table: a pooler in transaction
			// mode moved the connection. The next attempt creates it anew.
			delete(conn.Conn().PgConn().CustomData(), c.stage.Sanitize())
			err = &pgconn.PgError{Code: "40001", Message: "the staging table is gone from the session: " + err.Error()}
		}
		return staged{}, fmt.Errorf("copy into staging table for %s: %w", c.target.Sanitize(), err)
	}
	var w staged
	if c.upsertCounts {
		var total int64
		err = tx.QueryRow(ctx, c.insert).Scan(&w.inserted, &total)
		w.updated = total - w.inserted
	} else {
		var tag pgconn.CommandTag
		tag, err = tx.Exec(ctx, c.insert)
		w.inserted = tag.RowsAffected()
	}
	if err != nil {
		return staged{}, fmt.Errorf("upsert into %s: %w", c.target.Sanitize(), err)
	}
	w.skipped = int64(len(rows)) - w.inserted - w.updated
	if err := tx.Commit(ctx); err != nil {
		return staged{}, fmt.Errorf("commit upsert into %s: %w", c.target.Sanitize(), err)
	}
	return w, nil
}

// ensureStage creates the staging table on conn unless it did so before.
// The table lives as long as the session, so it is created once per
// connection, not per transaction (a CREATE … IF NOT EXISTS in each also
// sent a notice back every time).
//
// In a transaction, the mark is set before the transaction commits: should
// it roll back, the table is gone and the mark is wrong, and the next COPY
// into it, meeting 42P01, clears the mark (stageAndInsertTx).
func (c *copier) ensureStage(ctx context.Context, db stageCreator) error {
	created := db.Conn().PgConn().CustomData()
	if created[c.stage.Sanitize()] != nil {
		return nil
	}
	for _, statement := range c.createStage {
		if _, err := db.Exec(ctx, statement); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
	}
	created[c.stage.Sanitize()] = true
	return nil
}

// stageCreator is a connection or a transaction on one.
type stageCreator interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Conn() *pgx.Conn
}

// isUndefinedTable matches SQLSTATE 42P01.
func isUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42P01"
}

// prepareStages creates the staging table on up to n connections of the
// pool at once, at connect, so that the first staged writes of a stream
// (it starts on the conflict path) do not pay for the catalog changes. A
// failure is left for the writes to meet and retry.
func (c *copier) prepareStages(ctx context.Context, n int) {
	var conns []*pgxpool.Conn
	defer func() {
		for _, conn := range conns {
			conn.Release()
		}
	}()
	for range n {
		conn, err := c.pool.Acquire(ctx)
		if err != nil {
			return
		}
		conns = append(conns, conn)
		if c.ensureStage(ctx, conn) != nil {
			return
		}
	}
}

// isDecompressionLimit matches TimescaleDB's refusal to decompress more
// tuples in one transaction than its limit allows.
func isDecompressionLimit(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "53400"
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// backoff is the wait before the attempt-th retry of a transient failure.
func backoff(attempt int, initial, maximum time.Duration) time.Duration {
	return min(initial<<min(attempt-1, 16), maximum)
}
