package dlq

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// errNoSource is why a letter without a qiflow-source-topic header cannot
// be redriven.
var errNoSource = errors.New("no qiflow-source-topic header")

// redrivePartitioner sends a record to the partition it names, when the
// topic has it: a redriven letter goes back to the partition it was
// consumed from, so that it stays with its series. A record naming none
// (Partition < 0) or one the topic does not have goes by its key's hash.
func redrivePartitioner() kgo.Partitioner {
	byKey := kgo.StickyKeyPartitioner(nil)
	return kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		hash := byKey.ForTopic(topic)
		return func(r *kgo.Record, n int) int {
			if r.Partition >= 0 && int(r.Partition) < n {
				return int(r.Partition)
			}
			return hash.Partition(r, n)
		}
	})
}

// redriveRecord is the record that sends l back to its source topic: the
// original key and value, byte for byte, and HeaderRedrive naming the
// letter. The qiflow-error-* and source headers stay behind: they were
// about the failure, and a new failure writes its own.
func redriveRecord(l *Letter) (*kgo.Record, error) {
	if l.SourceTopic == "" {
		return nil, errNoSource
	}
	return &kgo.Record{
		Topic:     l.SourceTopic,
		Partition: l.SourcePartition,
		Key:       l.Key,
		Value:     l.Value,
		Headers:   []kgo.RecordHeader{{Key: HeaderRedrive, Value: []byte(l.ID())}},
	}, nil
}

// redriver produces redriven letters and counts the outcome. The
// promises run on franz-go's goroutines, so mu guards the counts.
type redriver struct {
	cl *kgo.Client

	mu     sync.Mutex
	sent   int
	failed []error
}

func (r *redriver) send(ctx context.Context, l *Letter) error {
	rec, err := redriveRecord(l)
	if err != nil {
		return err
	}
	id := l.ID()
	r.cl.Produce(ctx, rec, func(rec *kgo.Record, err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil {
			r.failed = append(r.failed, fmt.Errorf("redrive %s to %s: %w", id, rec.Topic, err))
			return
		}
		r.sent++
	})
	return nil
}

// wait waits for every record sent and returns how many were delivered
// and the failures.
func (r *redriver) wait(ctx context.Context) (int, error) {
	if err := r.cl.Flush(ctx); err != nil {
		return 0, fmt.Errorf("flush: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent, errors.Join(r.failed...)
}

// ClientOptions are the options a client for Read and Redrive needs: a
// plain consumer that keeps control records (so that a partition ending in
// a transaction marker is seen to end), producing with the partitioner
// that sends a letter back to its source partition.
func ClientOptions() []kgo.Opt {
	return []kgo.Opt{kgo.KeepControlRecords(), kgo.RecordPartitioner(redrivePartitioner())}
}

// RedriveReport is what a redrive did, or with DryRun would do.
type RedriveReport struct {
	Redriven int      `json:"redriven"`
	Skipped  []string `json:"skipped"`
	DryRun   bool     `json:"dryRun,omitempty"`
}

// Redrive sends each letter of topic that passes filter back to its
// source topic and partition (see redriveRecord) and waits until every one
// is written; with dryRun it sends nothing. each, when not nil, is called
// with every selected letter and, for one without a source topic that is
// skipped, the reason. cl is made with ClientOptions.
func Redrive(ctx context.Context, cl *kgo.Client, topic string, filter Filter, dryRun bool, each func(l *Letter, skipped error)) (RedriveReport, error) {
	rep := RedriveReport{Skipped: []string{}, DryRun: dryRun}
	rd := &redriver{cl: cl}
	err := Read(ctx, cl, topic, filter, func(l Letter) error {
		var err error
		if _, err = redriveRecord(&l); err == nil && !dryRun {
			err = rd.send(ctx, &l)
		}
		switch {
		case errors.Is(err, errNoSource):
			rep.Skipped = append(rep.Skipped, l.ID())
		case err != nil:
			return err
		case dryRun:
			rep.Redriven++
		}
		if each != nil {
			each(&l, err)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if !dryRun {
		sent, err := rd.wait(ctx)
		rep.Redriven = sent
		if err != nil {
			return rep, fmt.Errorf("redrove %d letters, then: %w", sent, err)
		}
	}
	return rep, nil
}
