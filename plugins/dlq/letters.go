package dlq

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/result"
)

// HeaderRedrive marks a redriven message: its value is the dead letter it
// came from, as topic/partition/offset.
const HeaderRedrive = "qiflow-redrive"

// Letter is one dead letter: the record as it sits in the dead-letter
// topic, and what its qiflow-* headers say.
type Letter struct {
	Topic     string    `json:"topic"`
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Timestamp time.Time `json:"timestamp"`
	Category  string    `json:"category"`
	Code      string    `json:"code"`
	Error     string    `json:"error"`
	// SourceTopic, SourcePartition and SourceOffset say where the message
	// was consumed from; SourcePartition is -1 when the header is missing.
	SourceTopic     string `json:"sourceTopic"`
	SourcePartition int32  `json:"sourcePartition"`
	SourceOffset    int64  `json:"sourceOffset"`
	// Headers are all the record's headers, in order.
	Headers []kgo.RecordHeader `json:"-"`
	Key     []byte             `json:"-"`
	Value   []byte             `json:"-"`
}

// ID names the letter: topic/partition/offset.
func (l *Letter) ID() string { return fmt.Sprintf("%s/%d/%d", l.Topic, l.Partition, l.Offset) }

func letterOf(r *kgo.Record) Letter {
	l := Letter{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Headers: r.Headers, Key: r.Key, Value: r.Value, SourcePartition: -1, SourceOffset: -1,
	}
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case result.HeaderErrorCategory:
			l.Category = v
		case result.HeaderErrorCode:
			l.Code = v
		case result.HeaderError:
			l.Error = v
		case result.HeaderSourceTopic:
			l.SourceTopic = v
		case result.HeaderSourcePartition:
			if p, err := strconv.ParseInt(v, 10, 32); err == nil {
				l.SourcePartition = int32(p)
			}
		case result.HeaderSourceOffset:
			if o, err := strconv.ParseInt(v, 10, 64); err == nil {
				l.SourceOffset = o
			}
		}
	}
	return l
}

// Filter selects dead letters. Empty fields select everything.
type Filter struct {
	// Codes and Categories match qiflow-error-code and
	// qiflow-error-category; categories ignore case.
	Codes      []string
	Categories []string
	// Since and Until bound the dead letter's record time: Since <= t < Until.
	Since, Until time.Time
	// Partition and Offset, when not negative, select one letter.
	Partition int32
	Offset    int64
}

// Match reports whether l passes the filter.
func (f Filter) Match(l *Letter) bool {
	if len(f.Codes) > 0 && !slices.Contains(f.Codes, l.Code) {
		return false
	}
	if len(f.Categories) > 0 && !slices.ContainsFunc(f.Categories, func(c string) bool { return strings.EqualFold(c, l.Category) }) {
		return false
	}
	if !f.Since.IsZero() && l.Timestamp.Before(f.Since) {
		return false
	}
	if !f.Until.IsZero() && !l.Timestamp.Before(f.Until) {
		return false
	}
	if f.Partition >= 0 && l.Partition != f.Partition {
		return false
	}
	if f.Offset >= 0 && l.Offset != f.Offset {
		return false
	}
	return true
}

// Read reads topic from the start of each partition to the end it has
// when Read is called, and calls fn with each letter that passes the
// filter, in offset order within a partition. cl must be a plain consumer
// (no group) made with kgo.KeepControlRecords, so that a partition ending
// in a transaction marker is seen to end.
func Read(ctx context.Context, cl *kgo.Client, topic string, filter Filter, fn func(Letter) error) error {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("list end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("topic %s: %w", topic, err)
	}
	if _, ok := ends[topic]; !ok {
		return fmt.Errorf("topic %s does not exist", topic)
	}
	from := map[int32]kgo.Offset{}
	until := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		start, _ := starts.Lookup(topic, o.Partition)
		if o.Offset > start.Offset && (filter.Partition < 0 || o.Partition == filter.Partition) {
			from[o.Partition] = kgo.NewOffset().At(start.Offset)
			until[o.Partition] = o.Offset
		}
	})
	if len(from) == 0 {
		return nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: from})
	defer cl.RemoveConsumePartitions(map[string][]int32{topic: keysOf(from)})
	for len(until) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fmt.Errorf("read %s: %w", topic, ferr)
		}
		var fnErr error
		fetches.EachRecord(func(r *kgo.Record) {
			end, reading := until[r.Partition]
			if !reading || r.Offset >= end || fnErr != nil {
				return
			}
			if r.Offset == end-1 {
				delete(until, r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			if l := letterOf(r); filter.Match(&l) {
				fnErr = fn(l)
			}
		})
		if fnErr != nil {
			return fnErr
		}
	}
	return nil
}

func keysOf[V any](m map[int32]V) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
