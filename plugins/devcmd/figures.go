package devcmd

import (
	"context"
	"fmt"
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"

	qiprom "github.com/qicore/qiflow/plugins/prometheus"
)

// pipelineLabel is the metrics label a dev run puts on each ingest
// pipeline's metrics (metrics.mapping), so the summary can tell them apart.
const pipelineLabel = "pipeline"

// The `timescale` output's metrics the summary reads, as /metrics names
// them (docs/timescale-output.md).
const (
	metricRowsWritten = "qiflow_timescale_rows_written_total"
	metricConflicts   = "qiflow_timescale_conflicts_skipped_total"
	metricDeadLetters = "qiflow_timescale_rows_dead_lettered_total"
	metricLatency     = "qiflow_timescale_end_to_end_latency_seconds"
)

// bucket is one cumulative histogram bucket.
type bucket struct {
	upper float64 // seconds
	count uint64  // samples at or below upper
}

// latency is a cumulative latency histogram.
type latency struct {
	buckets []bucket
	count   uint64
}

// pipelineCounts are one ingest pipeline's counters since the process
// started: this run's, since the registry is the process's own.
type pipelineCounts struct {
	rows, conflicts, deadLetters float64
	latency                      latency
}

// snapshot is what the summary compares from one refresh to the next.
type snapshot struct {
	at        time.Time
	produced  int64 // messages in the data topics, since the run started
	pipelines map[string]pipelineCounts
}

// gatherCounts reads the ingest pipelines' counters from the process's
// metrics registry.
func gatherCounts() (map[string]pipelineCounts, error) {
	families, err := qiprom.Registry().Gather()
	if err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	counts := map[string]pipelineCounts{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			name := labelValue(m, pipelineLabel)
			if name == "" {
				continue
			}
			c := counts[name]
			switch f.GetName() {
			case metricRowsWritten:
				c.rows += m.GetCounter().GetValue()
			case metricConflicts:
				c.conflicts += m.GetCounter().GetValue()
			case metricDeadLetters:
				c.deadLetters += m.GetCounter().GetValue()
			case metricLatency:
				h := m.GetHistogram()
				c.latency.count = h.GetSampleCount()
				c.latency.buckets = c.latency.buckets[:0]
				for _, b := range h.GetBucket() {
					c.latency.buckets = append(c.latency.buckets, bucket{b.GetUpperBound(), b.GetCumulativeCount()})
				}
			}
			counts[name] = c
		}
	}
	return counts, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// quantile estimates the q-quantile of the samples between prev and now,
// interpolating within a bucket as Prometheus's histogram_quantile does.
// ok is false when there were none. Past the last bucket it answers the
// last bound.
func quantile(q float64, now, prev latency) (seconds float64, ok bool) {
	total := now.count - prev.count
	if total == 0 || len(now.buckets) == 0 {
		return 0, false
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for i, b := range now.buckets {
		in := b.count
		if i < len(prev.buckets) {
			in -= prev.buckets[i].count
		}
		if float64(in) >= rank {
			if in == below {
				return b.upper, true
			}
			return lower + (b.upper-lower)*(rank-float64(below))/float64(in-below), true
		}
		lower, below = b.upper, in
	}
	return now.buckets[len(now.buckets)-1].upper, true
}

// endOffsets returns the end offset of each data topic, summed over its
// partitions.
func endOffsets(ctx context.Context, adm *kadm.Client, ingest []ingestPipeline) (map[string]int64, error) {
	topics := make([]string, len(ingest))
	for i, p := range ingest {
		topics[i] = p.topic
	}
	listed, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	sums := map[string]int64{}
	var failed error
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			failed = fmt.Errorf("end offset of %s/%d: %w", o.Topic, o.Partition, o.Err)
			return
		}
		sums[o.Topic] += o.Offset
	})
	return sums, failed
}

// rate is n per second over d, 0 for an empty interval.
func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return math.Max(n, 0) / d.Seconds()
}
