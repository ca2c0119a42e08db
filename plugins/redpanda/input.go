package redpanda

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/exactlyonce"
	"github.com/qicore/qiflow/internal/metricdoc"
	"github.com/qicore/qiflow/internal/result"
)

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

// reader is the redpanda input. A poll loop buffers fetched records into one
// partitionWindow per assigned partition; ReadBatch hands them downstream;
// ack functions feed results back; a commit loop commits acked prefixes.
// group_session.go holds the loops and the rebalance callbacks, and the lock
// and ordering invariants they keep.
type reader struct {
	conf    readerConfig
	log     *service.Logger
	replays *service.MetricCounter
	lag     consumerLag // set under mu

	// mu guards the fields below it up to client, every partitionWindow,
	// and the pause state of franz-go's fetches: a pause or resume is
	// decided and applied under mu (see group_session.go).
	mu      sync.Mutex
	windows map[topicPartition]*partitionWindow
	order   []topicPartition // round-robin order of windows
	cursor  int
	changed chan struct{} // closed and replaced whenever a window changes
	fatal   error         // set when the input must stop, e.g. bad credentials
	// leaving is set by Close: Benthos has resolved every ack it will ever
	// resolve, so what is still outstanding is never waited for.
	leaving bool

	client       *kgo.Client
	connectTries int
	drainOnStop  sync.Once
	stopLoops    context.CancelFunc
	loops        sync.WaitGroup
	commitNow    chan struct{}
	// scope is shared with the other components of the stream: a fatal
	// error in any of them ends this input, and the input's soft stop
	// drains them all.
	scope *result.Scope
	// link is shared with a timescale output in exactly-once mode, which
	// keeps the offsets partitions start from (adjustOffsets).
	link *exactlyonce.Link
	// dbStarts holds, guarded by mu, the offset each partition of the
	// current assignment was started at from the database.
	dbStarts map[topicPartition]int64
}

func newReader(conf readerConfig, mgr *service.Resources) *reader {
	link := exactlyonce.LinkOf(mgr)
	link.SetGroup(conf.group)
	return &reader{
		conf:      conf,
		log:       mgr.Logger(),
		scope:     result.ScopeOf(mgr),
		link:      link,
		replays:   metricdoc.Counter(mgr.Metrics(), "qiflow_redpanda_input_replayed", "Messages handed downstream again after their write failed."),
		lag:       newConsumerLag(mgr.Metrics(), conf.group),
		windows:   map[topicPartition]*partitionWindow{},
		changed:   make(chan struct{}),
		commitNow: make(chan struct{}, 1),
	}
}

// Connect creates the consumer and checks that the cluster answers and the
// topics exist. Unreachable brokers and missing topics are retried with
// growing backoff; rejected credentials stop the input.
func (r *reader) Connect(ctx context.Context) error {
	if r.client != nil {
		return nil
	}
	// Benthos passes Connect and ReadBatch the context of its soft stop.
	// When it ends, the stream drains: retry waits downstream give up, so
	// the acks that Benthos waits for before Close come at once.
	r.drainOnStop.Do(func() { context.AfterFunc(ctx, r.scope.Drain) })
	cl, err := kgo.NewClient(r.clientOpts()...)
	if err != nil {
		return fmt.Errorf("redpanda input config: %w", err)
	}
	if err := r.checkCluster(ctx, cl); err != nil {
		cl.Close()
		classified := result.Classify(err)
		if classified.Action() == result.Stop {
			r.halt(classified)
			return nil
		}
		r.connectTries++
		return service.NewErrBackOff(classified, connectBackoff(r.connectTries))
	}
	r.connectTries = 0
	r.client = cl
	loopCtx, cancel := context.WithCancel(context.Background())
	r.stopLoops = cancel
	r.loops.Add(2)
	go r.pollLoop(loopCtx, cl)
	go r.commitLoop(loopCtx, cl)
	r.log.Infof("Consuming %v as group %q from %s", r.conf.topics, r.conf.group, r.conf.conn.describe())
	return nil
}

func (r *reader) clientOpts() []kgo.Opt {
	reset := kgo.NewOffset().AtStart()
	if r.conf.startLatest {
		reset = kgo.NewOffset().AtEnd()
	}
	opts := append(r.conf.conn.clientOpts(),
		kgo.ConsumerGroup(r.conf.group),
		kgo.ConsumeTopics(r.conf.topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(r.conf.fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(r.conf.fetchMaxPart),
		kgo.FetchMaxWait(r.conf.fetchMaxWait),
		kgo.SessionTimeout(r.conf.sessionTimeout),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
		kgo.AdjustFetchOffsetsFn(r.adjustOffsets),
	)
	if r.conf.regexpTopics {
		opts = append(opts, kgo.ConsumeRegex())
	}
	return opts
}

// checkCluster pings the brokers and, for named topics, checks they exist.
func (r *reader) checkCluster(ctx context.Context, cl *kgo.Client) error {
	if err := ping(ctx, cl, r.conf.conn.requestTimeout); err != nil {
		return fmt.Errorf("reach %s: %w", r.conf.conn.describe(), err)
	}
	if r.conf.regexpTopics {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.conf.conn.requestTimeout)
	defer cancel()
	details, err := kadm.NewClient(cl).ListTopics(ctx, r.conf.topics...)
	if err != nil {
		return fmt.Errorf("list topics on %s: %w", r.conf.conn.describe(), err)
	}
	for _, t := range r.conf.topics {
		d, ok := details[t]
		if !ok || errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return result.Wrap(result.External, "topic_not_found", kerr.UnknownTopicOrPartition,
				fmt.Sprintf("topic %q does not exist on %s; waiting for it to be created", t, r.conf.conn.describe())).AsTransient()
		}
		if d.Err != nil {
			return fmt.Errorf("describe topic %q: %w", t, d.Err)
		}
	}
	return nil
}

// halt stops the input for good with a clear error: ReadBatch then ends the
// input and the pipeline shuts down instead of retrying in vain. ReadBatch
// does the same when any other component of the stream halted (result.Scope),
// such as the timescale output on rejected database credentials.
func (r *reader) halt(err *result.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fatal != nil {
		return
	}
	r.fatal = err
	r.scope.Halt(err)
	r.log.Errorf("Stopping the redpanda input (%s): %v", err.Category, err)
	r.broadcastLocked()
}

func (r *reader) broadcastLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// ReadBatch hands downstream the next due batch of one partition, waiting
// until one is due.
func (r *reader) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	r.mu.Lock()
	for {
		if r.fatal != nil || r.scope.Halted() != nil {
			r.mu.Unlock()
			return nil, nil, service.ErrEndOfInput
		}
		if r.client == nil {
			r.mu.Unlock()
			return nil, nil, service.ErrNotConnected
		}
		if ctx.Err() != nil {
			// A soft stop: Benthos would drop a batch handed now without
			// acking it, so hand none.
			r.mu.Unlock()
			return nil, nil, ctx.Err()
		}
		now := time.Now()
		tp, w, recs, wake := r.nextLocked(now)
		if recs != nil {
			if !w.started {
				w.started = true
				if want, ok := r.dbStarts[tp]; ok && recs[0].Offset < want {
					r.mu.Unlock()
					r.halt(result.New(result.System, "offsets_reset", fmt.Sprintf(
						"%s/%d was started at offset %d, where the database's exactly-once offsets say, but its first message is at %d: the topic was recreated or truncated, and messages below %d would be taken for written. Delete the partition's row in the offsets table to consume it from the start",
						tp.topic, tp.partition, want, recs[0].Offset, want)))
					return nil, nil, service.ErrEndOfInput
				}
				if r.link.Wanted() {
					r.link.Started(tp.topic, tp.partition, recs[0].Offset)
				}
			}
			if w.paused && len(w.buffered) < r.bufferLimit()/2 {
				r.resumeLocked(map[string][]int32{tp.topic: {tp.partition}}, w)
			}
			r.mu.Unlock()
			batch := r.batchOf(recs)
			return batch, r.ackFunc(tp, w, recs, batch.Index()), nil
		}
		changed := r.changed
		r.mu.Unlock()

		if err := waitForChange(ctx, changed, wake); err != nil {
			return nil, nil, err
		}
		r.mu.Lock()
	}
}

// waitForChange blocks until changed is closed, wake passes (unless zero)
// or ctx ends.
func waitForChange(ctx context.Context, changed <-chan struct{}, wake time.Time) error {
	var timer <-chan time.Time
	if !wake.IsZero() {
		t := time.NewTimer(time.Until(wake))
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-changed:
	case <-timer:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// nextLocked picks the next partition with a due batch, round-robin. When
// none is due it returns the earliest time one may become due (zero: wait
// for a change).
func (r *reader) nextLocked(now time.Time) (topicPartition, *partitionWindow, []*kgo.Record, time.Time) {
	var wake time.Time
	earliest := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	for range r.order {
		r.cursor = (r.cursor + 1) % len(r.order)
		tp := r.order[r.cursor]
		w := r.windows[tp]
		if len(w.replay) > 0 && now.Before(w.replayAt) {
			earliest(w.replayAt)
			continue
		}
		if len(w.replay) == 0 && len(w.buffered) < r.conf.batchCount && r.conf.batchPeriod > 0 {
			if due := w.bufferedSince.Add(r.conf.batchPeriod); len(w.buffered) > 0 && now.Before(due) {
				earliest(due)
				continue
			}
		}
		if recs := w.next(r.conf.batchCount, now); recs != nil {
			return tp, w, recs, time.Time{}
		}
		if len(w.replay) == 0 && len(w.buffered) > 0 && w.ackedUncommitted() > 0 {
			// The window declined buffered records for lack of room, and
			// a commit makes room: commit now, not at the next tick.
			r.requestCommit()
		}
	}
	return topicPartition{}, nil, nil, wake
}

func (r *reader) bufferLimit() int {
	return max(2*r.conf.batchCount, r.conf.checkpointLimit)
}

// batchOf turns records into messages. The partition, offset and
// timestamp are kept as numbers, as Redpanda Connect's Kafka inputs keep
// them: formatting three strings per message cost more than the rest of
// the metadata, and Bloblang and interpolations render numbers as text.
func (r *reader) batchOf(recs []*kgo.Record) service.MessageBatch {
	batch := make(service.MessageBatch, len(recs))
	for i, rec := range recs {
		msg := service.NewMessage(rec.Value)
		msg.MetaSetMut(metaKey, string(rec.Key))
		msg.MetaSetMut(metaTopic, rec.Topic)
		msg.MetaSetMut(metaPartition, int64(rec.Partition))
		msg.MetaSetMut(metaOffset, rec.Offset)
		msg.MetaSetMut(metaTimestamp, rec.Timestamp.UnixMilli())
		for _, h := range rec.Headers {
			msg.MetaSetMut(h.Key, string(h.Value))
		}
		batch[i] = msg
	}
	return batch
}

// ackFunc feeds a batch's outcome back into its partition window. A batch
// error fails only the messages it names; the rest are acked.
func (r *reader) ackFunc(tp topicPartition, w *partitionWindow, recs []*kgo.Record, index *service.Indexer) service.AckFunc {
	var once sync.Once
	return func(_ context.Context, err error) error {
		once.Do(func() {
			r.settle(tp, w, recs, index, err)
		})
		return nil
	}
}

func (r *reader) settle(tp topicPartition, w *partitionWindow, recs []*kgo.Record, index *service.Indexer, err error) {
	failed := recs
	var delivered []*kgo.Record
	var batchErr *service.BatchError
	if err != nil && errors.As(err, &batchErr) && batchErr.IndexedErrors() > 0 {
		failedIdx := make(map[int]bool, batchErr.IndexedErrors())
		batchErr.WalkMessagesIndexedBy(index, func(i int, _ *service.Message, merr error) bool {
			if merr != nil {
				failedIdx[i] = true
			}
			return true
		})
		failed = failed[:0:0]
		for i, rec := range recs {
			if failedIdx[i] {
				failed = append(failed, rec)
			} else {
				delivered = append(delivered, rec)
			}
		}
	}
	if err == nil {
		failed, delivered = nil, recs
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if w.detached {
		return
	}
	if len(delivered) > 0 && w.ack(delivered) && w.wantsCommit() {
		r.requestCommit()
	}
	if len(failed) > 0 {
		wait := w.nack(failed, time.Now())
		r.replays.Incr(int64(len(failed)))
		r.log.Debugf("Replaying %d messages of %s/%d from offset %d in %v: %v", len(failed), tp.topic, tp.partition, failed[0].Offset, wait, err)
	}
	r.broadcastLocked()
}

func (r *reader) requestCommit() {
	select {
	case r.commitNow <- struct{}{}:
	default:
	}
}
