package redpanda

import (
	"strconv"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/metricdoc"
)

// consumerLag is the qiflow_redpanda_consumer_lag gauge: per partition this
// member owns, the messages between the group's committed offset and the
// partition's high watermark. A partition the member gives up reads 0, so
// that summing over the members of a group counts each partition once.
type consumerLag struct {
	gauge *service.MetricGauge
	group string
}

func newConsumerLag(m *service.Metrics, group string) consumerLag {
	return consumerLag{
		gauge: metricdoc.Gauge(m, "qiflow_redpanda_consumer_lag",
			"Messages between the consumer group's committed offset and the partition's high watermark, for the partitions this member owns (0 for the others).",
			"group", "topic", "partition"),
		group: group,
	}
}

// observe records what a fetch of the partition said about its end, and
// where this member started reading it.
func (w *partitionWindow) observe(p kgo.FetchTopicPartition) {
	if p.HighWatermark >= 0 {
		w.highWatermark = p.HighWatermark
	}
	if w.startOffset < 0 && len(p.Records) > 0 {
		w.startOffset = p.Records[0].Offset
	}
}

// lag is how far the partition's committed offset trails its high
// watermark; ok is false until a fetch has told both. Before this member's
// first commit, the group's committed offset is where it started.
func (w *partitionWindow) lag() (n int64, ok bool) {
	from := w.committed
	if from < 0 {
		from = w.startOffset
	}
	if w.highWatermark < 0 || from < 0 {
		return 0, false
	}
	return max(w.highWatermark-from, 0), true
}

// set reports the lag of the window's partition. The caller holds the
// reader's mu.
func (l consumerLag) set(tp topicPartition, w *partitionWindow) {
	if n, ok := w.lag(); ok {
		l.gauge.Set(n, l.group, tp.topic, strconv.Itoa(int(tp.partition)))
	}
}

// release reports 0 for a partition this member no longer owns.
func (l consumerLag) release(tp topicPartition) {
	l.gauge.Set(0, l.group, tp.topic, strconv.Itoa(int(tp.partition)))
}
