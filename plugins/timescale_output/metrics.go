package timescale_output

import (
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
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
	retries        *service.MetricCounter
	writeDuration  *service.MetricTimer
	latency        *service.MetricTimer
}

func newMetrics(m *service.Metrics) metrics {
	return metrics{
		rowsInserted:   m.NewCounter("timescale_rows_inserted"),
		rowsUpdated:    m.NewCounter("timescale_rows_updated"),
		rowsWritten:    m.NewCounter("timescale_rows_written"),
		batches:        m.NewCounter("timescale_batches"),
		fastBatches:    m.NewCounter("timescale_fast_path_batches"),
		stagedBatches:  m.NewCounter("timescale_staged_path_batches"),
		rollbacks:      m.NewCounter("timescale_copy_rollbacks"),
		alreadyWritten: m.NewCounter("timescale_offsets_already_written"),
		conflicts:      m.NewCounter("timescale_conflicts_skipped"),
		deadLettered:   m.NewCounter("timescale_rows_dead_lettered"),
		retries:        m.NewCounter("timescale_retries"),
		writeDuration:  m.NewTimer("timescale_write_duration_ns"),
		latency:        m.NewTimer("timescale_end_to_end_latency_ns"),
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
