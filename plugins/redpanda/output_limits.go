package redpanda

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/result"
)

// HeaderTruncated marks a dead letter whose body was cut to fit its topic's
// max.message.bytes; its value is the original body's size in bytes. The
// qiflow-source-* headers of the same record name where the original is.
const HeaderTruncated = "qiflow-truncated"

// Record size limits. franz-go caps a record batch at 1,000,012 bytes unless
// told otherwise, Kafka's default; topics and brokers may allow more (kfake
// and Redpanda allow 1,048,588 by default), and the broker limit on a
// request bounds them all.
const (
	defaultBatchMaxBytes = 1_000_012
	minBatchMaxBytes     = 512
	maxBatchMaxBytes     = 100 << 20 // franz-go's default BrokerMaxWriteBytes
	// recordOverhead bounds what a record batch of one record adds to the
	// record's key, value and headers: the batch header (61 bytes) and the
	// record's varints, with room to spare.
	recordOverhead = 256
)

// recordLimits holds the largest record batch each topic accepts, its
// max.message.bytes as the cluster reports it, for the producer
// (kgo.ProducerBatchMaxBytesFn) and for fitting dead letters. A topic that
// cannot be described (missing, or no DescribeConfigs ACL) gets the broker's
// message.max.bytes, and without that franz-go's default.
type recordLimits struct {
	log      *service.Logger
	fallback atomic.Int32
	topics   sync.Map // topic → int32
}

func newRecordLimits(log *service.Logger) *recordLimits {
	l := &recordLimits{log: log}
	l.fallback.Store(defaultBatchMaxBytes)
	return l
}

// forTopic returns the limit of topic. franz-go calls it once per partition,
// when it first produces to it.
func (l *recordLimits) forTopic(topic string) int32 {
	if v, ok := l.topics.Load(topic); ok {
		return v.(int32)
	}
	return l.fallback.Load()
}

// known reports whether topic's own limit was read.
func (l *recordLimits) known(topic string) bool {
	_, ok := l.topics.Load(topic)
	return ok
}

// learnDefault reads the message.max.bytes of one broker, the limit of
// topics that cannot be described.
func (l *recordLimits) learnDefault(ctx context.Context, adm *kadm.Client, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	brokers, err := adm.BrokerMetadata(ctx)
	if err != nil || len(brokers.Brokers) == 0 {
		l.log.Debugf("Reading the brokers' message.max.bytes: %v; using %d", err, l.fallback.Load())
		return
	}
	configs, err := adm.DescribeBrokerConfigs(ctx, brokers.Brokers[0].NodeID)
	if err == nil {
		if n, ok := configValue(configs, "message.max.bytes"); ok {
			l.fallback.Store(n)
			return
		}
	}
	l.log.Debugf("Reading the brokers' message.max.bytes: %v; using %d", err, l.fallback.Load())
}

// learn reads the max.message.bytes of topics. A topic it cannot describe
// keeps the default and is tried again on its next write.
func (l *recordLimits) learn(ctx context.Context, adm *kadm.Client, timeout time.Duration, topics []string) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	described, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		l.log.Debugf("Reading max.message.bytes of %v: %v; using %d", topics, err, l.fallback.Load())
		return
	}
	for _, rc := range described {
		if rc.Err != nil || !slices.Contains(topics, rc.Name) {
			continue
		}
		if n, ok := configValue(kadm.ResourceConfigs{rc}, "max.message.bytes"); ok {
			l.topics.Store(rc.Name, n)
		}
	}
}

// configValue returns the value of key in the first resource that has it,
// clamped to what franz-go accepts.
func configValue(rcs kadm.ResourceConfigs, key string) (int32, bool) {
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key != key || c.Value == nil {
				continue
			}
			n, err := strconv.ParseInt(*c.Value, 10, 64)
			if err != nil {
				return 0, false
			}
			return int32(min(max(n, minBatchMaxBytes), maxBatchMaxBytes)), true
		}
	}
	return 0, false
}

// isDeadLetter reports whether msg is a dead letter: it carries the reason
// it could not be written, as result.MarkDeadLetter sets it.
func isDeadLetter(msg *service.Message) bool {
	_, ok := msg.MetaGet(result.HeaderError)
	return ok
}

// sourceHeaders are the headers naming where a dead letter came from, and
// the redpanda input's metadata each can be taken from.
var sourceHeaders = [...][2]string{
	{result.HeaderSourceTopic, "kafka_topic"},
	{result.HeaderSourcePartition, "kafka_partition"},
	{result.HeaderSourceOffset, "kafka_offset"},
}

// shrink makes rec, the record of dead letter msg that was too large, fit
// its topic: the first time it cuts the body to what the limit leaves, the
// second time it drops the body. It marks the record with HeaderTruncated
// and the source headers. It reports false when there is nothing left to
// cut.
func (w *writer) shrink(msg *service.Message, rec *kgo.Record) bool {
	if len(rec.Value) == 0 {
		return false
	}
	if !hasHeader(rec, HeaderTruncated) {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(rec.Value)))})
		for _, h := range sourceHeaders {
			if hasHeader(rec, h[0]) {
				continue
			}
			v, ok := msg.MetaGet(h[0])
			if !ok {
				v, ok = msg.MetaGet(h[1])
			}
			if ok {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(v)})
			}
		}
		if budget := int(w.limits.forTopic(rec.Topic)) - recordOverhead - recordSizeWithoutValue(rec); budget > 0 && budget < len(rec.Value) {
			rec.Value = rec.Value[:budget]
			w.log.Warnf("Truncated a dead letter for %s to %d bytes: %s", rec.Topic, budget, describeSource(rec))
			w.truncated.Incr(1)
			return true
		}
	}
	rec.Value = nil
	w.log.Warnf("Wrote a dead letter for %s without its body: %s", rec.Topic, describeSource(rec))
	w.truncated.Incr(1)
	return true
}

// recordSizeWithoutValue is the size of rec's key and headers.
func recordSizeWithoutValue(rec *kgo.Record) int {
	n := len(rec.Key)
	for _, h := range rec.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

func hasHeader(rec *kgo.Record, key string) bool {
	return slices.ContainsFunc(rec.Headers, func(h kgo.RecordHeader) bool { return h.Key == key })
}

// describeSource names the original of a truncated dead letter for the log.
func describeSource(rec *kgo.Record) string {
	s := ""
	for _, h := range rec.Headers {
		switch h.Key {
		case HeaderTruncated, result.HeaderSourceTopic, result.HeaderSourcePartition, result.HeaderSourceOffset:
			s += fmt.Sprintf("%s=%s ", h.Key, h.Value)
		}
	}
	return s
}
