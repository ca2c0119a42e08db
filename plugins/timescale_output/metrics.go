package timescale_output

import (
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/metricdoc"
	"github.com/qicore/qiflow/internal/result"
)

// metrics are the output's own counters and timers, next to Benthos's;
// docs/timescale-output.md says what each counts.
type metrics struct {
	rowsInserted  *service.MetricCounter
	rowsUpdated   *service.MetricCounter
	rowsWritten   *service.MetricCounter
	batches       *service.MetricCounter
	fastBatches   *service.MetricCounter
	stagedBatches *service.MetricCounter
	rollbacks     *service.MetricCounter
	// alreadyWritten counts messages an exactly-once write skipped because
	// the database's offset was past them.
	alreadyWritten *service.MetricCounter
	conflicts      *service.MetricCounter
	deadLettered   *service.MetricCounter
	droppedRows    *service.MetricCounter
	deleted        *service.MetricCounter
	retries        *service.MetricCounter
	writeDuration  *service.MetricTimer
	latency        *service.MetricTimer
}

func newMetrics(m *service.Metrics) metrics {
	return metrics{
		rowsInserted:   metricdoc.Counter(m, "qiflow_timescale_rows_inserted", "Rows the timescale output inserted."),
		rowsUpdated:    metricdoc.Counter(m, "qiflow_timescale_rows_updated", "Rows the timescale output updated in place (conflict: do_update)."),
		rowsWritten:    metricdoc.Counter(m, "qiflow_timescale_rows_written", "Rows the timescale output inserted or updated."),
		batches:        metricdoc.Counter(m, "qiflow_timescale_batches", "Batches the timescale output committed."),
		fastBatches:    metricdoc.Counter(m, "qiflow_timescale_fast_path_batches", "Batches written by a COPY straight into the table."),
		stagedBatches:  metricdoc.Counter(m, "qiflow_timescale_staged_path_batches", "Batches written through a staging table, for their conflicts."),
		rollbacks:      metricdoc.Counter(m, "qiflow_timescale_copy_rollbacks", "COPYs into the table rolled back by a duplicate key and written again through the staging table."),
		alreadyWritten: metricdoc.Counter(m, "qiflow_timescale_offsets_already_written", "Messages an exactly-once write skipped because the database's offset was past them."),
		conflicts:      metricdoc.Counter(m, "qiflow_timescale_conflicts_skipped", "Messages whose row was already there (conflict: do_nothing): replays and re-sends."),
		deadLettered:   metricdoc.Counter(m, "qiflow_timescale_rows_dead_lettered", "Messages that can never be written, sent to the dead-letter output, by the code and category of their error (the qiflow-error-* headers).", "code", "category"),
		droppedRows:    metricdoc.Counter(m, "qiflow_timescale_rows_dropped", "Messages that can never be written, dropped unwritten (on_error: drop), by the code and category of their error.", "code", "category"),
		deleted:        metricdoc.Counter(m, "qiflow_timescale_messages_deleted", "Messages the mapping deleted (deleted()), acknowledged without a row."),
		retries:        metricdoc.Counter(m, "qiflow_timescale_retries", "Write attempts retried after a transient error."),
		writeDuration:  metricdoc.Timer(m, "qiflow_timescale_write_duration_ns", "Time to write and commit one batch."),
		latency:        metricdoc.Timer(m, "qiflow_timescale_end_to_end_latency_ns", "Time from a message's Kafka record timestamp to its row's commit, sampled."),
	}
}

// record counts one batch written, and its rows (see rows).
func (m metrics) record(stats pathStats, took time.Duration) {
	m.batches.Incr(1)
	m.rows(stats)
	m.fastBatches.Incr(int64(stats.fastBatches))
	m.stagedBatches.Incr(int64(stats.stagedBatches))
	m.rollbacks.Incr(int64(stats.rollbacks))
	m.writeDuration.Timing(took.Nanoseconds())
}

// rows counts rows as the database reported them (pathStats), so that the
// counters add up to what the table holds: every message is counted once,
// as a row inserted, a row updated, a conflict skipped or a dead letter. A
// batch that gives up counts the rows it wrote before; its replay counts
// them again, as conflicts.
func (m metrics) rows(stats pathStats) {
	m.rowsInserted.Incr(stats.inserted)
	m.rowsUpdated.Incr(stats.updated)
	m.rowsWritten.Incr(stats.inserted + stats.updated)
	m.conflicts.Incr(stats.conflicts)
}

// deadLetters counts the messages of a batch that went to the dead-letter
// output, by their error's code and category.
func (m metrics) deadLetters(failed map[int]error) {
	for _, err := range failed {
		e := result.Classify(err)
		m.deadLettered.Incr(1, e.Code, e.Category.String())
	}
}

// dropped counts the messages of a batch dropped unwritten (on_error:
// drop), by their error's code and category.
func (m metrics) dropped(failed map[int]error) {
	for _, err := range failed {
		e := result.Classify(err)
		m.droppedRows.Incr(1, e.Code, e.Category.String())
	}
}

// latencySampleEvery is how often a written message's latency is sampled.
// Reading a message's metadata costs as much as a tenth of writing its row;
// every 8th message still gives a large batch hundreds of samples, the
// first message of each batch always among them.
const latencySampleEvery = 8

// observeLatency records, for a sample of the written messages, the time
// from the Kafka record timestamp to now.
func (m metrics) observeLatency(batch service.MessageBatch, written []bool) {
	now := time.Now()
	for i := 0; i < len(batch); i += latencySampleEvery {
		if !written[i] {
			continue
		}
		if ts, ok := kafkaTimestamp(batch[i]); ok {
			m.latency.Timing(now.Sub(ts).Nanoseconds())
		}
	}
}
