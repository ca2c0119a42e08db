package redpanda

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qicore/qiflow/internal/result"
)

// Input field names.
const (
	inFieldTopics           = "topics"
	inFieldRegexpTopics     = "regexp_topics"
	inFieldConsumerGroup    = "consumer_group"
	inFieldStartFrom        = "start_from"
	inFieldCheckpointLimit  = "checkpoint_limit"
	inFieldCommitPeriod     = "commit_period"
	inFieldBatchCount       = "batch_count"
	inFieldBatchPeriod      = "batch_period"
	inFieldFetchMaxBytes    = "fetch_max_bytes"
	inFieldFetchMaxPartByte = "fetch_max_partition_bytes"
	inFieldFetchMaxWait     = "fetch_max_wait"
	inFieldRevokeTimeout    = "revoke_timeout"
	inFieldSessionTimeout   = "session_timeout"
	inFieldRequestTimeout   = "request_timeout"
)

// Metadata keys set on every consumed message, besides the record headers.
const (
	metaKey       = "kafka_key"
	metaTopic     = "kafka_topic"
	metaPartition = "kafka_partition"
	metaOffset    = "kafka_offset"
	metaTimestamp = "kafka_timestamp_unix_ms"
)

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Consumes Redpanda or Kafka topics in a consumer group, committing an offset only after every message before it was safely written.").
		Description(`
Messages come in batches of one partition each. Every message carries the metadata `+"`kafka_key`, `kafka_topic`, `kafka_partition`, `kafka_offset`, `kafka_timestamp_unix_ms`"+` and its record headers.

### Delivery

The input keeps its own checkpoint per partition: it commits only the contiguous prefix of acknowledged messages, so a message that failed downstream is never committed past. A nacked message is handed downstream again, with backoff, before any newer message of its partition, until it is acknowledged. On a partition revoke the input waits for what is in flight (up to `+"`revoke_timeout`"+`) and commits; on close it commits everything acknowledged.

After a crash at most `+"`checkpoint_limit`"+` messages per partition are delivered again, because no more than that many are ever past the committed offset.

### Ordering

With `+"`max_in_flight: 1`"+` on the output, messages of one partition are written in offset order while writes succeed. When `+"`checkpoint_limit`"+` is no larger than `+"`batch_count`"+`, only one batch per partition is downstream at a time, so the order also holds across replays, at the cost of throughput per partition. Partitions always proceed independently of each other.`).
		Fields(connectionFields()...).
		Fields(
			service.NewStringListField(inFieldTopics).
				Description("Topics to consume. With `regexp_topics`, each entry is a regular expression matched against every topic of the cluster.").
				Example([]string{"crypto-prices"}),
			service.NewBoolField(inFieldRegexpTopics).
				Description("Treat `topics` as regular expressions.").
				Default(false).
				Advanced(),
			service.NewStringField(inFieldConsumerGroup).
				Description("Consumer group. Replicas with the same group share the partitions.").
				Example("qiflow-prices"),
			service.NewStringEnumField(inFieldStartFrom, "earliest", "latest").
				Description("Where a partition starts when the group has no committed offset for it.").
				Default("earliest"),
			service.NewIntField(inFieldCheckpointLimit).
				Description("Most messages per partition past the committed offset: handed downstream or acknowledged but not yet committed. It bounds both the work in flight and the messages delivered again after a crash. Set it no larger than `batch_count` for strict order across replays.").
				Default(2048).
				LintRule(`root = if this < 1 { [ "checkpoint_limit must be at least 1" ] }`),
			service.NewDurationField(inFieldCommitPeriod).
				Description("How often acknowledged offsets are committed. A partition whose window is half full of acknowledged messages is committed at once.").
				Default("1s"),
			service.NewIntField(inFieldBatchCount).
				Description("Most messages in one batch. A batch holds messages of one partition only.").
				Default(1024).
				LintRule(`root = if this < 1 { [ "batch_count must be at least 1" ] }`),
			service.NewDurationField(inFieldBatchPeriod).
				Description("How long a partition may wait to fill a batch of `batch_count` messages. Zero sends what has been fetched at once.").
				Default("0s").
				Example("50ms"),
			service.NewIntField(inFieldFetchMaxBytes).
				Description("Most bytes one fetch request returns.").
				Default(50<<20).
				Advanced(),
			service.NewIntField(inFieldFetchMaxPartByte).
				Description("Most bytes one fetch request returns for one partition.").
				Default(1<<20).
				Advanced(),
			service.NewDurationField(inFieldFetchMaxWait).
				Description("How long the broker may wait for data before it answers a fetch.").
				Default("500ms").
				Advanced(),
			service.NewDurationField(inFieldSessionTimeout).
				Description("How long the group waits for a member that stopped heartbeating (a crashed replica) before its partitions move to the others.").
				Default("45s").
				Advanced(),
			service.NewDurationField(inFieldRevokeTimeout).
				Description("How long a revoked partition's in-flight messages may take to finish before its offsets are committed and it is released.").
				Default("10s").
				Advanced(),
			service.NewDurationField(inFieldRequestTimeout).
				Description("How long each check at connect (ping, topic lookup) may take before it is retried. Defaults to the profile's `redpanda.request_timeout`.").
				Example("10s").
				Optional().
				Advanced(),
		).
		Example("Consume prices", "Consume the price topic in the shared consumer group, connecting as the profile says (docs/profiles.md).", `
input:
  redpanda:
    topics: [ crypto-prices ]
    consumer_group: qiflow-prices
`).
		Example("Explicit connection", "Name the brokers and credentials in the pipeline instead of taking the profile's; the password stays in the environment.", `
input:
  redpanda:
    seed_brokers: [ "redpanda-0:9093,redpanda-1:9093" ]
    tls: { enabled: true }
    sasl: { mechanism: SCRAM-SHA-512, user: ingest, password: "${REDPANDA_PASSWORD}" }
    topics: [ crypto-prices ]
    consumer_group: qiflow-prices
`)
}

func init() {
	err := service.RegisterBatchInput("redpanda", inputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchInput, error) {
			return newReaderFromConfig(conf, mgr)
		})
	if err != nil {
		panic(err)
	}
}

// readerConfig is the parsed configuration of the redpanda input.
type readerConfig struct {
	conn            connection
	topics          []string
	regexpTopics    bool
	group           string
	startLatest     bool
	checkpointLimit int
	commitPeriod    time.Duration
	batchCount      int
	batchPeriod     time.Duration
	fetchMaxBytes   int32
	fetchMaxPart    int32
	fetchMaxWait    time.Duration
	revokeTimeout   time.Duration
	sessionTimeout  time.Duration
}

func newReaderFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*reader, error) {
	var (
		c   readerConfig
		err error
	)
	if c.conn, err = parseConnection(conf, inFieldRequestTimeout); err != nil {
		return nil, err
	}
	if c.topics, err = conf.FieldStringList(inFieldTopics); err != nil {
		return nil, err
	}
	if len(c.topics) == 0 {
		return nil, fmt.Errorf("%s: at least one topic is required", inFieldTopics)
	}
	if c.regexpTopics, err = conf.FieldBool(inFieldRegexpTopics); err != nil {
		return nil, err
	}
	if c.regexpTopics {
		for _, t := range c.topics {
			if _, err := regexp.Compile(t); err != nil {
				return nil, fmt.Errorf("%s: %q is not a regular expression: %w", inFieldTopics, t, err)
			}
		}
	}
	if c.group, err = conf.FieldString(inFieldConsumerGroup); err != nil {
		return nil, err
	}
	if c.group == "" {
		return nil, fmt.Errorf("%s must not be empty", inFieldConsumerGroup)
	}
	startFrom, err := conf.FieldString(inFieldStartFrom)
	if err != nil {
		return nil, err
	}
	c.startLatest = startFrom == "latest"
	if c.checkpointLimit, err = conf.FieldInt(inFieldCheckpointLimit); err != nil {
		return nil, err
	}
	if c.batchCount, err = conf.FieldInt(inFieldBatchCount); err != nil {
		return nil, err
	}
	if c.checkpointLimit < 1 || c.batchCount < 1 {
		return nil, fmt.Errorf("%s and %s must be at least 1", inFieldCheckpointLimit, inFieldBatchCount)
	}
	if c.commitPeriod, err = conf.FieldDuration(inFieldCommitPeriod); err != nil {
		return nil, err
	}
	if c.batchPeriod, err = conf.FieldDuration(inFieldBatchPeriod); err != nil {
		return nil, err
	}
	fetchMaxBytes, err := conf.FieldInt(inFieldFetchMaxBytes)
	if err != nil {
		return nil, err
	}
	fetchMaxPart, err := conf.FieldInt(inFieldFetchMaxPartByte)
	if err != nil {
		return nil, err
	}
	c.fetchMaxBytes, c.fetchMaxPart = int32(fetchMaxBytes), int32(fetchMaxPart)
	if c.fetchMaxWait, err = conf.FieldDuration(inFieldFetchMaxWait); err != nil {
		return nil, err
	}
	if c.revokeTimeout, err = conf.FieldDuration(inFieldRevokeTimeout); err != nil {
		return nil, err
	}
	if c.sessionTimeout, err = conf.FieldDuration(inFieldSessionTimeout); err != nil {
		return nil, err
	}
	return newReader(c, mgr), nil
}

// topicPartition names one partition.
type topicPartition struct {
	topic     string
	partition int32
}

// reader is the redpanda input. A poll loop buffers fetched records into one
// partitionWindow per assigned partition; ReadBatch hands them downstream;
// ack functions feed results back; a commit loop commits acked prefixes.
type reader struct {
	conf    readerConfig
	log     *service.Logger
	replays *service.MetricCounter

	mu      sync.Mutex
	windows map[topicPartition]*partitionWindow
	order   []topicPartition // round-robin order of windows
	cursor  int
	changed chan struct{} // closed and replaced whenever a window changes
	fatal   error         // set when the input must stop, e.g. bad credentials

	client       *kgo.Client
	connectTries int
	stopLoops    context.CancelFunc
	loops        sync.WaitGroup
	commitNow    chan struct{}
	// scope is shared with the other components of the stream: a fatal
	// error in any of them ends this input.
	scope *result.Scope
}

func newReader(conf readerConfig, mgr *service.Resources) *reader {
	return &reader{
		conf:      conf,
		log:       mgr.Logger(),
		scope:     result.ScopeOf(mgr),
		replays:   mgr.Metrics().NewCounter("redpanda_input_replayed"),
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
		now := time.Now()
		tp, w, recs, wake := r.nextLocked(now)
		if recs != nil {
			resume := w.paused && len(w.buffered) < r.bufferLimit()/2
			if resume {
				w.paused = false
			}
			r.mu.Unlock()
			if resume {
				r.client.ResumeFetchPartitions(map[string][]int32{tp.topic: {tp.partition}})
			}
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
		if w.used() >= r.conf.checkpointLimit/2 {
			r.requestCommit()
		}
	}
	return topicPartition{}, nil, nil, wake
}

func (r *reader) bufferLimit() int {
	return max(2*r.conf.batchCount, r.conf.checkpointLimit)
}

func (r *reader) batchOf(recs []*kgo.Record) service.MessageBatch {
	batch := make(service.MessageBatch, len(recs))
	for i, rec := range recs {
		msg := service.NewMessage(rec.Value)
		msg.MetaSetMut(metaKey, string(rec.Key))
		msg.MetaSetMut(metaTopic, rec.Topic)
		msg.MetaSetMut(metaPartition, strconv.Itoa(int(rec.Partition)))
		msg.MetaSetMut(metaOffset, strconv.FormatInt(rec.Offset, 10))
		msg.MetaSetMut(metaTimestamp, strconv.FormatInt(rec.Timestamp.UnixMilli(), 10))
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

// pollLoop fetches records into the partition windows. Rebalances are
// blocked between a poll and AllowRebalance, so records never land in a
// window of a partition that was revoked meanwhile.
func (r *reader) pollLoop(ctx context.Context, cl *kgo.Client) {
	defer r.loops.Done()
	var lastErr string
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() {
			cl.AllowRebalance()
			return
		}
		var toPause map[string][]int32
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			classified := result.Classify(err)
			if classified.Action() == result.Stop {
				r.halt(classified)
				return
			}
			if msg := classified.Error(); msg != lastErr {
				lastErr = msg
				r.log.Warnf("Fetching %s/%d: %v (retrying)", topic, partition, classified)
			}
		})
		now := time.Now()
		r.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			w, ok := r.windows[topicPartition{p.Topic, p.Partition}]
			if !ok || len(p.Records) == 0 {
				return
			}
			w.add(p.Records, now)
			if !w.paused && len(w.buffered) >= r.bufferLimit() {
				w.paused = true
				if toPause == nil {
					toPause = map[string][]int32{}
				}
				toPause[p.Topic] = append(toPause[p.Topic], p.Partition)
			}
		})
		r.broadcastLocked()
		r.mu.Unlock()
		if toPause != nil {
			cl.PauseFetchPartitions(toPause)
		}
		cl.AllowRebalance()
	}
}

// commitLoop commits acked prefixes every commit period, and at once when a
// partition's window fills with acked messages.
func (r *reader) commitLoop(ctx context.Context, cl *kgo.Client) {
	defer r.loops.Done()
	ticker := time.NewTicker(r.conf.commitPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-r.commitNow:
		}
		if err := r.commit(ctx, cl, nil); err != nil && ctx.Err() == nil {
			r.log.Warnf("Committing offsets of group %q: %v (retrying)", r.conf.group, err)
		}
	}
}

// commit commits the acked prefix of the given partitions, or of every
// partition when only is nil.
func (r *reader) commit(ctx context.Context, cl *kgo.Client, only map[topicPartition]*partitionWindow) error {
	type covered struct {
		w          *partitionWindow
		offset     int64
		ackedTotal int
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	var done []covered
	r.mu.Lock()
	windows := only
	if windows == nil {
		windows = r.windows
	}
	for tp, w := range windows {
		eo, n, ok := w.pendingCommit()
		if !ok {
			continue
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.topic][tp.partition] = eo
		done = append(done, covered{w, eo.Offset, n})
	}
	r.mu.Unlock()
	if len(done) == 0 {
		return nil
	}

	var commitErr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && commitErr == nil {
					commitErr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr)
				}
			}
		}
	})
	if commitErr != nil {
		return result.Classify(commitErr)
	}
	r.mu.Lock()
	for _, c := range done {
		c.w.commitDone(c.offset, c.ackedTotal)
	}
	r.broadcastLocked()
	r.mu.Unlock()
	return nil
}

func (r *reader) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, partitions := range assigned {
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if old, ok := r.windows[tp]; ok {
				old.detached = true
			}
			r.windows[tp] = newPartitionWindow(r.conf.checkpointLimit)
		}
	}
	r.rebuildOrderLocked()
	r.log.Debugf("Assigned partitions %v", assigned)
}

// onRevoked finishes what can be finished on the revoked partitions within
// revoke_timeout, commits their acked prefix and releases them. What was not
// yet handed downstream is dropped: the next owner reads it again.
func (r *reader) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	revoking := map[topicPartition]*partitionWindow{}
	r.mu.Lock()
	for topic, partitions := range revoked {
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if w, ok := r.windows[tp]; ok {
				w.dropUndelivered()
				revoking[tp] = w
			}
		}
	}
	deadline := time.Now().Add(r.conf.revokeTimeout)
	for r.outstanding(revoking) > 0 && time.Now().Before(deadline) {
		changed := r.changed
		r.mu.Unlock()
		_ = waitForChange(ctx, changed, deadline)
		r.mu.Lock()
	}
	if n := r.outstanding(revoking); n > 0 {
		r.log.Warnf("Releasing revoked partitions with %d messages still in flight after %v; their next owner delivers them again", n, r.conf.revokeTimeout)
	}
	r.mu.Unlock()

	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.conf.revokeTimeout)
	defer cancel()
	if err := r.commit(commitCtx, cl, revoking); err != nil {
		r.log.Warnf("Committing revoked partitions of group %q: %v", r.conf.group, err)
	}
	r.release(cl, revoking)
}

// onLost releases partitions that another member may already own, without
// committing.
func (r *reader) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	released := map[topicPartition]*partitionWindow{}
	r.mu.Lock()
	for topic, partitions := range lost {
		for _, p := range partitions {
			if w, ok := r.windows[topicPartition{topic, p}]; ok {
				released[topicPartition{topic, p}] = w
			}
		}
	}
	r.mu.Unlock()
	r.release(cl, released)
}

// release forgets the windows of partitions this member no longer owns, and
// resumes fetching any it had paused, so a later assignment starts clean.
func (r *reader) release(cl *kgo.Client, windows map[topicPartition]*partitionWindow) {
	paused := map[string][]int32{}
	r.mu.Lock()
	for tp, w := range windows {
		w.detached = true
		if w.paused {
			paused[tp.topic] = append(paused[tp.topic], tp.partition)
		}
		if r.windows[tp] == w {
			delete(r.windows, tp)
		}
	}
	r.rebuildOrderLocked()
	r.broadcastLocked()
	r.mu.Unlock()
	if len(paused) > 0 {
		cl.ResumeFetchPartitions(paused)
	}
}

func (r *reader) outstanding(windows map[topicPartition]*partitionWindow) int {
	n := 0
	for _, w := range windows {
		n += w.outstanding
	}
	return n
}

func (r *reader) rebuildOrderLocked() {
	r.order = r.order[:0]
	for tp := range r.windows {
		r.order = append(r.order, tp)
	}
	r.cursor = 0
}

// Close commits everything acked and leaves the group. Benthos calls it after
// every pending ack has resolved.
func (r *reader) Close(ctx context.Context) error {
	if r.client == nil {
		return nil
	}
	r.stopLoops()
	r.loops.Wait()
	if err := r.commit(ctx, r.client, nil); err != nil {
		r.log.Warnf("Committing offsets of group %q on close: %v", r.conf.group, err)
	}
	r.client.CloseAllowingRebalance()
	r.mu.Lock()
	r.client = nil
	r.mu.Unlock()
	return nil
}
