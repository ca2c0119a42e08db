package timescale_output

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/result"
)

// Exactly-once mode (docs/exactly-once.md). The rows of a batch and, per
// (consumer group, topic, partition), the offset after the batch's last
// message are written in one transaction. The offsets row of each
// partition is locked first (SELECT … FOR UPDATE), in (topic, partition)
// order, and compared with where the batch starts:
//
//   - the database's offset is the batch's first: every message is written;
//   - it is past some or all of the batch: those messages are in the table
//     already, written by this writer before a crash or a retry whose commit
//     was lost, or by another member after a rebalance while this one was
//     stalled (a zombie). They are acknowledged as written and skipped: the
//     log is immutable, so the rows they would write are the rows written;
//   - it is before the batch's first: messages between are missing, so the
//     batch must not be written. It is refused and replayed by the input,
//     after the messages it waits for (the input replays a partition in
//     offset order); a gap that outlasts gapRefusalsBeforeHalt replays is
//     not an ordering effect but messages that never reach the output, and
//     stops the stream with an error that says so.
//
// Dead letters are produced while the transaction is open, before it
// commits: after the commit, a crash would lose them, since their offsets
// would be past. A crash between the two produces them again on replay:
// the one window in which a dead letter can be written twice.

// gapRefusalsBeforeHalt is how many batches of a partition in a row may be
// refused for starting after the database's offset before the stream stops.
// The input replays a refused batch after 100 ms, doubling up to 5 s, so
// this is about half a minute of waiting for messages that do not come.
const gapRefusalsBeforeHalt = 10

// createOffsetsTable creates the offsets table if it is missing, under a
// transaction-scoped advisory lock so that replicas starting together do
// not race on the catalog.
func createOffsetsTable(ctx context.Context, pool *pgxpool.Pool, table pgx.Identifier) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext('qiflow offsets table'))"); err != nil {
			return fmt.Errorf("lock to create %s: %w", table.Sanitize(), err)
		}
		_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
  consumer_group text NOT NULL,
  topic text NOT NULL,
  partition integer NOT NULL,
  next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, topic, partition))`, table.Sanitize()))
		if err != nil {
			return fmt.Errorf("create %s: %w", table.Sanitize(), err)
		}
		return nil
	})
}

// NextOffsets implements exactlyonce.Store for the stream's redpanda input.
func (o *output) NextOffsets(ctx context.Context, group, topic string, partitions []int32) (map[int32]int64, error) {
	o.mu.RLock()
	pool := o.pool
	o.mu.RUnlock()
	if pool == nil {
		return nil, service.ErrNotConnected
	}
	rows, err := pool.Query(ctx, fmt.Sprintf(
		"SELECT partition, next_offset FROM %s WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3)",
		o.conf.offsetsTable.Sanitize()), group, topic, partitions)
	if err != nil {
		return nil, fmt.Errorf("read offsets from %s: %w", o.conf.offsetsTable.Sanitize(), err)
	}
	next := map[int32]int64{}
	var p int32
	var at int64
	_, err = pgx.ForEachRow(rows, []any{&p, &at}, func() error {
		next[p] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read offsets from %s: %w", o.conf.offsetsTable.Sanitize(), err)
	}
	return next, nil
}

// partitionRange is the messages of one partition in a batch: the lowest
// and highest offsets, how many there are, and, once the offsets row is
// read, from which offset on they are written (keepFrom > last: none).
type partitionRange struct {
	topic       string
	partition   int32
	first, last int64
	count       int64
	keepFrom    int64
}

// position is where a message of the batch came from.
type position struct {
	part   int // index into the batch's partition ranges
	offset int64
}

// batchPositions reads each message's topic, partition and offset, as the
// redpanda input sets them, and returns the batch's partitions, sorted by
// topic and partition (the order their offsets rows are locked in). The
// messages of a partition may come in any order (a pipeline's processor
// threads may swap two input batches); what matters is that together they
// are every offset from the lowest to the highest, which lockOffsets
// checks.
func batchPositions(batch service.MessageBatch) ([]partitionRange, []position, error) {
	type tp struct {
		topic     string
		partition int32
	}
	index := map[tp]int{}
	var parts []partitionRange
	positions := make([]position, len(batch))
	for i, msg := range batch {
		topic, okTopic := msg.MetaGet("kafka_topic")
		partition, okPartition := metaInt(msg, "kafka_partition")
		offset, okOffset := metaInt(msg, "kafka_offset")
		if !okTopic || !okPartition || !okOffset {
			return nil, nil, result.New(result.System, "no_offsets",
				"exactly_once needs each message's kafka_topic, kafka_partition and kafka_offset metadata, as the redpanda input sets them")
		}
		key := tp{topic, int32(partition)}
		at, ok := index[key]
		if !ok {
			at = len(parts)
			index[key] = at
			parts = append(parts, partitionRange{topic: topic, partition: int32(partition), first: offset, last: offset})
		}
		p := &parts[at]
		p.first, p.last, p.count = min(p.first, offset), max(p.last, offset), p.count+1
		positions[i] = position{part: at, offset: offset}
	}
	// Sort the ranges, and renumber the positions to match.
	order := make([]int, len(parts))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := compareStrings(parts[a].topic, parts[b].topic); c != 0 {
			return c
		}
		return int(parts[a].partition) - int(parts[b].partition)
	})
	sorted := make([]partitionRange, len(parts))
	renumber := make([]int, len(parts))
	for to, from := range order {
		sorted[to], renumber[from] = parts[from], to
	}
	for i := range positions {
		positions[i].part = renumber[positions[i].part]
	}
	return sorted, positions, nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// metaInt reads an integer metadata value: a number, as the redpanda input
// sets it, or its text.
func metaInt(msg *service.Message, key string) (int64, bool) {
	v, ok := msg.MetaGetMut(key)
	if !ok {
		return 0, false
	}
	switch x := v.(type) {
	case int64:
		return x, true
	case int:
		return int64(x), true
	case int32:
		return int64(x), true
	case string:
		n, err := strconv.ParseInt(x, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// errGap is a batch refused because it starts after the offset the
// database holds for its partition.
type errGap struct {
	part partitionRange
	next int64
}

func (e *errGap) Error() string {
	if e.next >= e.part.first {
		return fmt.Sprintf("exactly_once: the batch holds %d messages of %s/%d between offsets %d and %d, not all of them; waiting for the rest",
			e.part.count, e.part.topic, e.part.partition, e.part.first, e.part.last)
	}
	return fmt.Sprintf("exactly_once: %s/%d continues at offset %d in the database, but the batch starts at %d; waiting for the messages between",
		e.part.topic, e.part.partition, e.next, e.part.first)
}

// gapCounter counts refused batches per partition, in a row.
type gapCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (g *gapCounter) note(p partitionRange, refused bool) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := p.topic + "/" + strconv.Itoa(int(p.partition))
	if !refused {
		delete(g.counts, key)
		return 0
	}
	if g.counts == nil {
		g.counts = map[string]int{}
	}
	g.counts[key]++
	return g.counts[key]
}

// exactlyOnceStats is what one exactly-once write did.
type exactlyOnceStats struct {
	inserted      int64
	alreadyStored int           // messages skipped: their offsets were past already
	deadLettered  map[int]error // by index in the batch
}

// writeExactlyOnce writes a batch in exactly-once mode: see the comment at
// the top of this file. Transient errors are retried here, as WriteBatch
// does, each time with a new transaction; a batch refused for a gap fails
// at once, so that the input replays it after what it waits for.
func (o *output) writeExactlyOnce(ctx context.Context, cp *copier, batch service.MessageBatch, started time.Time) error {
	group := o.link.Group()
	if group == "" {
		err := result.New(result.System, "no_consumer_group", "exactly_once needs the stream's input to be a redpanda input with a consumer_group")
		o.stop(err)
		return err
	}
	parts, positions, err := batchPositions(batch)
	if err != nil {
		o.stop(result.Classify(err))
		return err
	}
	decodeFailed := map[int]error{}
	enc := o.encode(batch, decodeFailed)
	defer enc.release()
	o.metrics.deleted.Incr(takeDeleted(decodeFailed))
	rows := enc.finish()

	retries, unknown := 0, 0
	var iso exactlyOnceIsolation
	for {
		failed := maps.Clone(decodeFailed)
		stats, err := o.writeWithOffsets(ctx, cp, group, batch, parts, positions, rows, failed, iso)
		if err == nil {
			for _, p := range parts {
				o.gaps.note(p, false)
			}
			o.metrics.rowsInserted.Incr(stats.inserted)
			o.metrics.rowsWritten.Incr(stats.inserted)
			o.metrics.alreadyWritten.Incr(int64(stats.alreadyStored))
			o.metrics.deadLetters(stats.deadLettered)
			o.metrics.batches.Incr(1)
			o.metrics.writeDuration.Timing(time.Since(started).Nanoseconds())
			return nil
		}
		var gap *errGap
		if errors.As(err, &gap) {
			if n := o.gaps.note(gap.part, true); n >= gapRefusalsBeforeHalt {
				halt := result.New(result.System, "offset_gap", fmt.Sprintf(
					"%v: refused %d times in a row. Messages between never reach the output: a processor that deletes messages, a compacted or transactional topic, or a retention that removed them. Remove the processor, or set next_offset of this partition in %s to where consumption should resume",
					gap, n, o.conf.offsetsTable.Sanitize()))
				o.stop(halt)
				return halt
			}
			o.log.Debugf("%v", gap)
			return err
		}
		classified := result.Classify(err)
		switch {
		case classified.Action() == result.Stop:
			o.stop(result.Wrap(classified.Category, classified.Code, err, "write "+o.conf.table.Sanitize()))
			return err
		case classified.Action() == result.DeadLetter && !iso.rows:
			iso.rows = true // redo the transaction, isolating the rows at fault
			continue
		case result.UnknownSQLSTATE(err) && !iso.unknown:
			if unknown++; unknown > unknownRetries {
				// As WriteBatch does: the server answers, so an error that
				// persists is taken for the rows' fault (unknownRetries).
				iso.rows, iso.unknown = true, true
				o.log.Warnf("Isolating the rows of %s that fail with SQLSTATE %s after %d retries: %v", o.conf.table.Sanitize(), classified.Code, unknownRetries, err)
				continue
			}
		}
		retries++
		wait := backoff(retries, o.conf.retryInitial, o.conf.retryMax)
		o.metrics.retries.Incr(1)
		o.log.Warnf("Retrying the exactly-once write of %d messages into %s in %v: %v", len(batch), o.conf.table.Sanitize(), wait, err)
		if werr := o.scope.Sleep(ctx, wait, errDraining); werr != nil {
			return fmt.Errorf("write %s: gave up on %d messages: %w (last error: %v)", o.conf.table.Sanitize(), len(batch), werr, err)
		}
	}
}

// exactlyOnceIsolation says how a transaction treats rows the database
// rejects.
type exactlyOnceIsolation struct {
	// rows: each rejected row is found with savepoints and dead-lettered;
	// otherwise the first rejection fails the transaction.
	rows bool
	// unknown: a SQLSTATE qiflow does not know counts as a rejection.
	unknown bool
}

// writeWithOffsets is one transaction of an exactly-once write. failed
// holds the messages that failed to decode, and receives those the
// database rejects (see exactlyOnceIsolation).
func (o *output) writeWithOffsets(ctx context.Context, cp *copier, group string, batch service.MessageBatch,
	parts []partitionRange, positions []position, rows []row, failed map[int]error, iso exactlyOnceIsolation,
) (exactlyOnceStats, error) {
	var stats exactlyOnceStats
	conn, err := cp.pool.Acquire(ctx)
	if err != nil {
		return stats, fmt.Errorf("acquire a connection: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return stats, fmt.Errorf("begin exactly-once write: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// A durable commit whatever the server's default or a pooler's session
	// state; and a member stalled inside this transaction (a GC or VM pause)
	// holds its partitions' offsets rows for at most 30 s before the server
	// ends its session, so the member that took its partitions over waits
	// no longer than that.
	if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = on"); err != nil {
		return stats, fmt.Errorf("set synchronous_commit: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL idle_in_transaction_session_timeout = '30s'"); err != nil {
		return stats, fmt.Errorf("set idle_in_transaction_session_timeout: %w", err)
	}
	if o.conf.directCompress {
		if _, err := tx.Exec(ctx, "SET LOCAL timescaledb.enable_direct_compress_copy = on"); err != nil {
			return stats, fmt.Errorf("enable direct compress: %w", err)
		}
	}
	if err := o.lockOffsets(ctx, tx, group, parts); err != nil {
		return stats, err
	}

	kept := func(i int) bool {
		p := positions[i]
		return p.offset >= parts[p.part].keepFrom
	}
	var write []row
	for _, r := range rows {
		if kept(r.index) {
			write = append(write, r)
		}
	}
	for i := range batch {
		if !kept(i) {
			stats.alreadyStored++
			delete(failed, i) // its dead letter was written with its offset
		}
	}
	if len(write) > 0 {
		if err := copyInTx(ctx, tx, cp.copyTarget, write, failed, &stats, iso); err != nil {
			return stats, err
		}
	}
	if len(failed) > 0 {
		if err := o.writeDeadLetters(ctx, batch, failed); err != nil {
			return stats, err
		}
		stats.deadLettered = failed
	}
	if err := o.advanceOffsets(ctx, tx, group, parts); err != nil {
		return stats, err
	}
	if err := tx.Commit(ctx); err != nil {
		return stats, fmt.Errorf("commit exactly-once write into %s: %w", o.conf.table.Sanitize(), err)
	}
	return stats, nil
}

// lockOffsets creates the missing offsets rows of parts (a partition's first
// batch starts it where the input started), locks them in order, and sets
// each part's keepFrom, or returns errGap.
func (o *output) lockOffsets(ctx context.Context, tx pgx.Tx, group string, parts []partitionRange) error {
	topics := make([]string, len(parts))
	partitions := make([]int32, len(parts))
	starts := make([]int64, len(parts))
	for i, p := range parts {
		topics[i], partitions[i], starts[i] = p.topic, p.partition, p.first
		// A partition's first row starts where the input started it, so
		// that a batch that overtook the first is refused, not taken as
		// the start (exactlyonce.Link.Started).
		if at, ok := o.link.Start(p.topic, p.partition); ok && at < p.first {
			starts[i] = at
		}
	}
	table := o.conf.offsetsTable.Sanitize()
	_, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s (consumer_group, topic, partition, next_offset)
SELECT $1, t, p, f FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, f)
ON CONFLICT DO NOTHING`, table), group, topics, partitions, starts)
	if err != nil {
		return fmt.Errorf("record offsets in %s: %w", table, err)
	}
	rows, err := tx.Query(ctx, fmt.Sprintf(`SELECT o.next_offset FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS u(t, p, i)
JOIN %s o ON o.consumer_group = $1 AND o.topic = u.t AND o.partition = u.p
ORDER BY u.i FOR UPDATE OF o`, table), group, topics, partitions)
	if err != nil {
		return fmt.Errorf("lock offsets in %s: %w", table, err)
	}
	next, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("lock offsets in %s: %w", table, err)
	}
	if len(next) != len(parts) {
		return fmt.Errorf("lock offsets in %s: %d rows for %d partitions", table, len(next), len(parts))
	}
	for i, p := range parts {
		if next[i] < p.first {
			return &errGap{part: p, next: next[i]}
		}
		// The messages to write, next[i] to last, must all be here.
		if kept := p.last - next[i] + 1; kept > 0 && p.last-p.first+1 != p.count {
			return &errGap{part: p, next: next[i]}
		}
		parts[i].keepFrom = next[i]
	}
	return nil
}

// advanceOffsets sets each part's next offset past its last message.
func (o *output) advanceOffsets(ctx context.Context, tx pgx.Tx, group string, parts []partitionRange) error {
	var topics []string
	var partitions []int32
	var nexts []int64
	for _, p := range parts {
		if p.keepFrom <= p.last {
			topics, partitions, nexts = append(topics, p.topic), append(partitions, p.partition), append(nexts, p.last+1)
		}
	}
	if len(topics) == 0 {
		return nil
	}
	table := o.conf.offsetsTable.Sanitize()
	_, err := tx.Exec(ctx, fmt.Sprintf(`UPDATE %s o SET next_offset = u.n, updated_at = now()
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(t, p, n)
WHERE o.consumer_group = $1 AND o.topic = u.t AND o.partition = u.p`, table), group, topics, partitions, nexts)
	if err != nil {
		return fmt.Errorf("advance offsets in %s: %w", table, err)
	}
	return nil
}

// copyInTx COPYs rows inside tx. With iso.rows, each COPY runs under a
// savepoint, and a COPY the database rejects for a row's fault is split
// until each rejected row stands alone, recorded in failed; the rest are
// written. Without, any error is returned.
func copyInTx(ctx context.Context, tx pgx.Tx, statement string, rows []row, failed map[int]error, stats *exactlyOnceStats, iso exactlyOnceIsolation) error {
	if !iso.rows {
		n, err := copyRows(ctx, tx.Conn().PgConn(), statement, rows)
		stats.inserted += n
		return err
	}
	if _, err := tx.Exec(ctx, "SAVEPOINT qiflow_rows"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	n, err := copyRows(ctx, tx.Conn().PgConn(), statement, rows)
	if err == nil {
		stats.inserted += n
		_, err = tx.Exec(ctx, "RELEASE SAVEPOINT qiflow_rows")
		return err
	}
	if _, rerr := tx.Exec(ctx, "ROLLBACK TO SAVEPOINT qiflow_rows"); rerr != nil {
		return fmt.Errorf("%w (and rolling back to the savepoint: %v)", err, rerr)
	}
	classified := result.Classify(err)
	switch {
	case classified.Action() == result.DeadLetter:
	case iso.unknown && result.UnknownSQLSTATE(err):
		classified = asRowFault(classified, unknownRetries)
	default:
		return err
	}
	if len(rows) == 1 {
		failed[rows[0].index] = classified
		return nil
	}
	mid := len(rows) / 2
	if err := copyInTx(ctx, tx, statement, rows[:mid], failed, stats, iso); err != nil {
		return err
	}
	return copyInTx(ctx, tx, statement, rows[mid:], failed, stats, iso)
}
