package redpanda

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/metricdoc"
	"github.com/qicore/qiflow/internal/result"
)

// Output field names.
const (
	outFieldTopic       = "topic"
	outFieldKey         = "key"
	outFieldPartition   = "partition"
	outFieldMetadata    = "metadata"
	outFieldCompression = "compression"
	outFieldTimeout     = "timeout"
	outFieldMaxInFlight = "max_in_flight"
	outFieldBatching    = "batching"
	outFieldDeadLetter  = "dead_letter"
)

// Produce retry backoff for transient broker errors.
const (
	produceBackoffBase = 100 * time.Millisecond
	produceBackoffMax  = 5 * time.Second
)

// errStopping is what a write returns once the stream drains: the messages
// are left unacknowledged, so an input with offsets does not commit them.
// It is transient, so that no caller dead-letters a message for it.
var errStopping = result.New(result.System, "stopping", "the stream is stopping; not written").AsTransient()

var compressionCodecs = map[string]kgo.CompressionCodec{
	"none":   kgo.NoCompression(),
	"gzip":   kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(),
	"lz4":    kgo.Lz4Compression(),
	"zstd":   kgo.ZstdCompression(),
}

func outputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Categories("Services").
		Summary("Produces messages to Redpanda or Kafka topics with an idempotent, acks=all producer.").
		Description(`
A batch is acknowledged only when every message of it is stored by all in-sync replicas. Transient broker errors (a leader moving, a broker restarting, a timeout) are retried inside the output with backoff until they succeed or the stream stops; a stop interrupts the waits and leaves what was not written unacknowledged. A message the broker can never take (a partition the topic does not have, too large, invalid) fails alone with a BUSINESS error: it goes to `+"`dead_letter`"+` when set, and is returned per message otherwise. Rejected credentials or missing ACLs stop the stream with a SECURITY error, at connect or at write.

Records may be as large as each topic's `+"`max.message.bytes`"+` allows (read from the cluster). A dead letter (a message carrying the `+"`qiflow-error`"+` metadata) that is larger still is written with its body truncated, and the header `+"`"+HeaderTruncated+"`"+` gives the original size; the `+"`qiflow-source-*`"+` headers name where the original is.`).
		Fields(connectionFields()...).
		Fields(
			service.NewInterpolatedStringField(outFieldTopic).
				Description("Topic of each message.").
				Example("crypto-prices").
				Example(`${! @qiflow_topic }`),
			service.NewInterpolatedStringField(outFieldKey).
				Description("Record key of each message. Messages with the same key go to the same partition unless `partition` is set.").
				Example(`${! json("exchangeId") }:${! json("symbol") }`).
				Optional(),
			service.NewInterpolatedStringField(outFieldPartition).
				Description("Explicit partition of each message, as an integer. When set, every message must resolve to a partition the topic has; one that does not fails with the BUSINESS error `invalid_partition`. When unset, partitions are chosen by key hash (murmur2, as Kafka's Java client does).").
				Example(`${! @qiflow_partition }`).
				Optional(),
			service.NewMetadataFilterField(outFieldMetadata).
				Description("Which metadata keys become record headers. By default none do.").
				Optional(),
			service.NewStringEnumField(outFieldCompression, "none", "gzip", "snappy", "lz4", "zstd").
				Description("Compression of produced record batches.").
				Default("lz4"),
			service.NewDurationField(outFieldTimeout).
				Description("How long one produce attempt, and the check at connect, may take before it is retried. Defaults to the profile's `redpanda.request_timeout`.").
				Example("10s").
				Optional().
				Advanced(),
			service.NewOutputMaxInFlightField().
				Description("Most batches written at once. Use 1 to keep the order of messages within a partition."),
			service.NewBatchPolicyField(outFieldBatching),
			service.NewOutputField(outFieldDeadLetter).
				Description("Where messages that can never be written go, with the headers `qiflow-error-category`, `qiflow-error-code` and `qiflow-error` saying why. Typically a `redpanda` output to `<topic>.dlq` with `metadata.include_prefixes: [ \"qiflow-\" ]`. Without it such messages fail the write one by one, and the input replays them.").
				Optional(),
		).
		Example("Forward prices", "Write prices keyed by exchange and symbol, connecting as the profile says (docs/profiles.md).", `
output:
  redpanda:
    topic: crypto-prices
    key: ${! json("exchangeId") }:${! json("symbol") }
`)
}

func init() {
	err := service.RegisterBatchOutput("redpanda", outputSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			w, err := newWriterFromConfig(conf, mgr)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			policy, err := conf.FieldBatchPolicy(outFieldBatching)
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			maxInFlight, err := conf.FieldMaxInFlight()
			if err != nil {
				return nil, service.BatchPolicy{}, 0, err
			}
			return w, policy, maxInFlight, nil
		})
	if err != nil {
		panic(err)
	}
}

// writer is the redpanda output.
type writer struct {
	conn        connection
	topic       *service.InterpolatedString
	key         *service.InterpolatedString
	partition   *service.InterpolatedString
	headers     *service.MetadataFilter
	compression kgo.CompressionCodec
	timeout     time.Duration
	deadLetter  *service.OwnedOutput // nil without dead_letter
	log         *service.Logger
	retries     *service.MetricCounter
	deadLetters *service.MetricCounter
	truncated   *service.MetricCounter
	scope       *result.Scope
	// abandoned is set once produce gave up on a record franz-go still
	// holds: Close must not flush, which would wait for it forever.
	abandoned atomic.Bool
	explicit  *explicitPartitioner
	limits    *recordLimits

	mu           sync.RWMutex
	client       *kgo.Client
	connectTries int
	stopped      bool // Halt was logged
}

func newWriterFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*writer, error) {
	log := mgr.Logger()
	w := &writer{
		log:         log,
		retries:     metricdoc.Counter(mgr.Metrics(), "qiflow_redpanda_output_retries", "Produce attempts retried after a transient broker error."),
		deadLetters: metricdoc.Counter(mgr.Metrics(), "qiflow_redpanda_output_dead_lettered", "Messages the broker can never accept (too large, invalid), failed to the pipeline's dead-letter path."),
		truncated:   metricdoc.Counter(mgr.Metrics(), "qiflow_redpanda_output_truncated", "Dead letters cut to the broker's size limit."),
		scope:       result.ScopeOf(mgr),
		explicit:    &explicitPartitioner{},
		limits:      newRecordLimits(log),
	}
	var err error
	if w.conn, err = parseConnection(conf, outFieldTimeout); err != nil {
		return nil, err
	}
	if w.topic, err = conf.FieldInterpolatedString(outFieldTopic); err != nil {
		return nil, err
	}
	if conf.Contains(outFieldKey) {
		if w.key, err = conf.FieldInterpolatedString(outFieldKey); err != nil {
			return nil, err
		}
	}
	if conf.Contains(outFieldPartition) {
		if w.partition, err = conf.FieldInterpolatedString(outFieldPartition); err != nil {
			return nil, err
		}
	}
	if conf.Contains(outFieldMetadata) {
		if w.headers, err = conf.FieldMetadataFilter(outFieldMetadata); err != nil {
			return nil, err
		}
	}
	codec, err := conf.FieldString(outFieldCompression)
	if err != nil {
		return nil, err
	}
	w.compression = compressionCodecs[codec]
	w.timeout = w.conn.requestTimeout
	if conf.Contains(outFieldDeadLetter) {
		if w.deadLetter, err = conf.FieldOutput(outFieldDeadLetter); err != nil {
			return nil, err
		}
		// Start it now, as the timescale output does: it connects before
		// the first dead letter, and Close then finds it running.
		if err := w.deadLetter.Prime(); err != nil {
			return nil, fmt.Errorf("%s: %w", outFieldDeadLetter, err)
		}
	}
	return w, nil
}

// Connect creates the producer, checks that the cluster answers with the
// configured credentials, and reads the record size limits.
//
// Benthos calls Connect until it succeeds and sleeps between attempts only
// until its own soft stop; a drain of the stream (result.Scope) does not
// reach that sleep. The backoff between attempts is therefore waited here,
// selecting on the drain, and Benthos is told to wait no more. Once the
// stream drains or halts, Connect returns at once without a client, so that
// Benthos's writer loop runs and WriteBatch refuses what still arrives:
// nothing waits on a connect loop, and the stream stops.
func (w *writer) Connect(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client != nil || w.scope.IsDraining() {
		return nil
	}
	if w.connectTries > 0 {
		if err := w.scope.Sleep(ctx, connectBackoff(w.connectTries), errStopping); err != nil {
			if errors.Is(err, errStopping) {
				return nil
			}
			return err
		}
	}
	opts := append(w.conn.clientOpts(),
		kgo.ProducerBatchCompression(w.compression),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProduceRequestTimeout(w.timeout),
		kgo.ProducerBatchMaxBytesFn(w.limits.forTopic),
	)
	if w.partition != nil {
		opts = append(opts, kgo.RecordPartitioner(w.explicit))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		w.halt(result.Wrap(result.System, "config", err, "redpanda output config"))
		return nil
	}
	if err := ping(ctx, cl, w.timeout); err != nil {
		cl.Close()
		classified := result.Classify(fmt.Errorf("reach %s: %w", w.conn.describe(), err))
		if classified.Action() == result.Stop {
			w.halt(classified)
			return nil
		}
		w.connectTries++
		return service.NewErrBackOff(classified, 0)
	}
	w.connectTries = 0
	w.limits.learnDefault(ctx, kadm.NewClient(cl), w.timeout)
	if topic, static := w.topic.Static(); static {
		w.limits.learn(ctx, kadm.NewClient(cl), w.timeout, []string{topic})
	}
	w.client = cl
	return nil
}

// halt stops the stream for good with a clear error: rejected credentials,
// missing ACLs or a broken configuration cannot be fixed by retrying. The
// input ends its stream when the scope halts (result.Scope).
func (w *writer) halt(err *result.Error) {
	if !w.stopped {
		w.stopped = true
		w.log.Errorf("Stopping the redpanda output (%s): %v", err.Category, err)
	}
	w.scope.Halt(err)
}

// WriteBatch produces the batch and returns once every message is stored or
// dead-lettered. Transient failures are retried here until the stream
// drains; messages that can never be stored go to dead_letter, or fail
// alone in a batch error.
func (w *writer) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	if halted := w.scope.Halted(); halted != nil {
		return fmt.Errorf("redpanda output: the stream stopped: %w", halted)
	}
	w.mu.RLock()
	cl := w.client
	w.mu.RUnlock()
	if cl == nil {
		if w.scope.IsDraining() {
			return errStopping
		}
		return service.ErrNotConnected
	}

	failed := map[int]error{}
	pending := make([]int, 0, len(batch))
	records := make([]*kgo.Record, len(batch))
	fields := w.interpolators(batch)
	for i, msg := range batch {
		rec, err := w.record(fields, i, msg)
		if err != nil {
			failed[i] = err
			continue
		}
		records[i] = rec
		pending = append(pending, i)
	}
	w.learnLimits(ctx, cl, records)

	var stopErr error // a Stop-action error, or why the retries gave up
	var gaveUp error  // set when ctx ended with messages still retriable: they are replayed, never dead-lettered
	for attempt := 1; len(pending) > 0; attempt++ {
		toSend := make([]*kgo.Record, len(pending))
		indexOf := make(map[*kgo.Record]int, len(pending))
		for j, i := range pending {
			// franz-go keeps a record's first context; a retry needs a fresh one.
			records[i].Context = nil
			toSend[j] = records[i]
			indexOf[records[i]] = i
		}
		// Results arrive in completion order, not in the order sent.
		var retry, resend []int // resend: shrunk dead letters, sent again at once
		var lastErr error
		for _, res := range w.produce(ctx, cl, toSend) {
			if res.Err == nil {
				continue
			}
			i := indexOf[res.Record]
			classified := result.Classify(res.Err)
			if n, ok := w.explicit.rejected(res.Record); ok {
				classified = result.Wrap(result.Business, "invalid_partition", res.Err, fmt.Sprintf(
					"partition %d does not exist: topic %s has %d partitions; a router or partition mapping must not assume more",
					res.Record.Partition, res.Record.Topic, n))
				w.explicit.report(w.log, res.Record.Topic, n)
			}
			if errors.Is(res.Err, kerr.MessageTooLarge) {
				if isDeadLetter(batch[i]) && w.shrink(batch[i], res.Record) {
					resend = append(resend, i)
					continue
				}
				classified = result.Wrap(result.Business, classified.Code, res.Err, fmt.Sprintf(
					"a record of %d bytes does not fit topic %s, which takes at most %d (max.message.bytes)",
					len(res.Record.Value)+recordSizeWithoutValue(res.Record), res.Record.Topic, w.limits.forTopic(res.Record.Topic)))
			}
			switch {
			case classified.Action() == result.Stop:
				stopErr = classified
				failed[i] = fmt.Errorf("produce to %s: %w", res.Record.Topic, classified)
			case classified.Action() == result.Retry && ctx.Err() == nil:
				retry = append(retry, i)
				lastErr = classified
			case classified.Action() == result.Retry:
				// The write ended before the message could be retried:
				// leave it unacked for the input to replay; it is no
				// dead letter.
				gaveUp = ctx.Err()
				failed[i] = fmt.Errorf("produce to %s: %w", res.Record.Topic, classified)
			default:
				failed[i] = fmt.Errorf("produce to %s: %w", res.Record.Topic, classified)
			}
		}
		pending = append(retry, resend...)
		slices.Sort(pending)
		if stopErr != nil {
			w.mu.Lock()
			w.halt(result.Classify(stopErr))
			w.mu.Unlock()
			break
		}
		if len(retry) == 0 {
			continue // done, or only shrunk dead letters to send again
		}
		if w.scope.IsDraining() {
			stopErr = errStopping
			if !errors.Is(lastErr, errStopping) {
				stopErr = fmt.Errorf("%w (last error: %v)", errStopping, lastErr)
			}
			break
		}
		wait := min(produceBackoffBase<<min(attempt-1, 16), produceBackoffMax)
		w.retries.Incr(int64(len(pending)))
		w.log.Warnf("Retrying %d messages in %v: %v", len(pending), wait, lastErr)
		if err := w.scope.Sleep(ctx, wait, errStopping); err != nil {
			stopErr = fmt.Errorf("%w (last error: %v)", err, lastErr)
			break
		}
	}
	for _, i := range pending { // left over when the retries gave up
		failed[i] = fmt.Errorf("produce to %s: %w", records[i].Topic, stopErr)
	}
	if len(failed) == 0 {
		return nil
	}
	if w.deadLetter != nil && stopErr == nil && gaveUp == nil {
		return w.deadLetterFailures(ctx, batch, failed)
	}
	return failuresError(batch, failed)
}

// produce sends records and waits for each result. The timeout bounds the
// records franz-go has not sent yet; those it has sent it retries itself,
// idempotently, until the broker answers, and produce waits for them: given
// up and sent again, they could be written twice.
//
// A drain of the stream, or the end of ctx, is the exception: produce then
// waits result.DrainGrace more for the answers in flight, and gives up on the rest.
// Their messages are left unacknowledged, for the input to replay; a record
// the broker did store meanwhile is then written again, the price of
// stopping within the drain time.
func (w *writer) produce(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) kgo.ProduceResults {
	attemptCtx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	var (
		mu      sync.Mutex
		results = make(kgo.ProduceResults, 0, len(recs))
		done    = make(chan struct{})
	)
	for _, r := range recs {
		cl.Produce(attemptCtx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			results = append(results, kgo.ProduceResult{Record: r, Err: err})
			if len(results) == len(recs) {
				close(done)
			}
		})
	}
	var giveUp error
	select {
	case <-done:
		return results
	case <-w.scope.Draining():
		giveUp = errStopping
	case <-ctx.Done():
		giveUp = ctx.Err()
	}
	cancel() // fails the records not sent yet
	grace := time.NewTimer(result.DrainGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
	}
	mu.Lock()
	defer mu.Unlock()
	answered := make(map[*kgo.Record]bool, len(results))
	for _, res := range results {
		answered[res.Record] = true
	}
	out := slices.Clone(results)
	for _, r := range recs {
		if !answered[r] {
			out = append(out, kgo.ProduceResult{Record: r, Err: giveUp})
			w.abandoned.Store(true)
		}
	}
	return out
}

// learnLimits reads the record size limit of each topic of records that
// the output has not written to yet, before franz-go asks for it.
func (w *writer) learnLimits(ctx context.Context, cl *kgo.Client, records []*kgo.Record) {
	var topics []string
	for _, r := range records {
		if r != nil && !w.limits.known(r.Topic) && !slices.Contains(topics, r.Topic) {
			topics = append(topics, r.Topic)
		}
	}
	if len(topics) > 0 {
		w.limits.learn(ctx, kadm.NewClient(cl), w.timeout, topics)
	}
}

// deadLetterFailures sends the failed messages to the dead-letter output, so
// that the batch succeeds; messages the dead-letter output cannot take fail
// alone.
func (w *writer) deadLetterFailures(ctx context.Context, batch service.MessageBatch, failed map[int]error) error {
	indexes := slices.Sorted(maps.Keys(failed))
	letters := make(service.MessageBatch, 0, len(indexes))
	for _, i := range indexes {
		dl := batch[i].Copy()
		result.MarkDeadLetter(dl, failed[i])
		letters = append(letters, dl)
		w.log.Debugf("Dead-lettering message %d: %v", i, failed[i])
	}
	index := letters.Index()
	err := w.deadLetter.WriteBatch(ctx, letters)
	if err == nil {
		w.deadLetters.Incr(int64(len(indexes)))
		return nil
	}
	// Only the letters the dead-letter output names stay failed; without a
	// batch error, all of them do.
	perLetter := make(map[int]error, len(indexes))
	if batchErr, ok := errors.AsType[*service.BatchError](err); ok {
		batchErr.WalkMessagesIndexedBy(index, func(j int, _ *service.Message, e error) bool {
			if e != nil && j >= 0 && j < len(indexes) {
				perLetter[j] = ownError(e)
			}
			return true
		})
	} else {
		for j := range indexes {
			perLetter[j] = err
		}
	}
	w.deadLetters.Incr(int64(len(indexes) - len(perLetter)))
	for j, i := range indexes {
		if e, ok := perLetter[j]; ok {
			failed[i] = fmt.Errorf("write dead letter: %w", e)
		} else {
			delete(failed, i)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	return failuresError(batch, failed)
}

// ownError returns the message's own error when err is a messageError, so
// that no batch error nests inside another.
func ownError(err error) error {
	if me, ok := err.(*messageError); ok {
		return me.err
	}
	return err
}

// failuresError is the batch error naming each failed message.
func failuresError(batch service.MessageBatch, failed map[int]error) error {
	indexes := slices.Sorted(maps.Keys(failed))
	batchErr := service.NewBatchError(batch, failed[indexes[0]])
	for _, i := range indexes {
		batchErr.Failed(i, &messageError{err: failed[i], batch: batchErr})
	}
	return batchErr
}

// messageError is the error of one message of a written batch, carrying the
// error of the whole batch.
//
// Benthos's output batcher (the `batching` field) merges the batches of
// several upstream transactions into one write and acks each transaction
// with only the first error among its messages: the BatchError, which says
// which messages failed, is dropped, and the input replays the whole
// transaction, the messages written included. Carrying the BatchError inside
// each message's error lets the components upstream (a switch output, an
// input's replay list) still find it with errors.As and replay only the
// failed messages.
type messageError struct {
	err   error
	batch *service.BatchError // its headline is never a messageError, so there is no cycle
}

func (e *messageError) Error() string { return e.err.Error() }

// Unwrap returns the message's error first, so that errors.As finds its
// category before the batch's.
func (e *messageError) Unwrap() []error { return []error{e.err, e.batch} }

// batchInterpolators evaluate the interpolated fields for one batch; made
// once per batch, they avoid copying the batch for every message.
type batchInterpolators struct {
	topic, key, partition *service.MessageBatchInterpolationExecutor
}

func (w *writer) interpolators(batch service.MessageBatch) batchInterpolators {
	b := batchInterpolators{topic: batch.InterpolationExecutor(w.topic)}
	if w.key != nil {
		b.key = batch.InterpolationExecutor(w.key)
	}
	if w.partition != nil {
		b.partition = batch.InterpolationExecutor(w.partition)
	}
	return b
}

// record builds the record of message i, or a BUSINESS error saying why the
// message cannot become one.
func (w *writer) record(fields batchInterpolators, i int, msg *service.Message) (*kgo.Record, error) {
	value, err := msg.AsBytes()
	if err != nil {
		return nil, result.Wrap(result.Business, "unreadable_message", err, "read message")
	}
	rec := &kgo.Record{Value: value}
	if rec.Topic, err = fields.topic.TryString(i); err != nil {
		return nil, result.Wrap(result.Business, "interpolation", err, "topic")
	}
	if rec.Topic == "" {
		return nil, result.New(result.Business, "empty_topic", "topic resolves to an empty string")
	}
	if fields.key != nil {
		key, err := fields.key.TryBytes(i)
		if err != nil {
			return nil, result.Wrap(result.Business, "interpolation", err, "key")
		}
		rec.Key = key
	}
	if fields.partition != nil {
		p, err := fields.partition.TryString(i)
		if err != nil {
			return nil, result.Wrap(result.Business, "interpolation", err, "partition")
		}
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			return nil, result.New(result.Business, "invalid_partition", fmt.Sprintf("partition %q is not a non-negative integer", p))
		}
		rec.Partition = int32(n)
	}
	if w.headers != nil {
		_ = w.headers.Walk(msg, func(k, v string) error {
			rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
			return nil
		})
	}
	return rec, nil
}

// Close flushes and closes the producer, and closes the dead-letter output.
func (w *writer) Close(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	var err error
	if w.client != nil {
		// Writes wait for their records, so only records given up at a
		// drain or at the end of a write's context can be left; a flush would wait for them forever when the
		// broker is gone. Closing fails them.
		if !w.scope.IsDraining() && !w.abandoned.Load() {
			err = w.client.Flush(ctx)
		}
		w.client.Close()
		w.client = nil
	}
	if w.deadLetter != nil {
		err = errors.Join(err, w.deadLetter.Close(ctx))
	}
	return err
}

// explicitPartitioner sends each record to the partition set on it, and
// remembers the records whose partition does not exist, with the topic's
// partition count, so that they fail as BUSINESS errors rather than being
// retried.
type explicitPartitioner struct {
	invalid  sync.Map // *kgo.Record → int: the topic's partitions
	reported sync.Map // topic → struct{}: the mismatch was logged
}

func (p *explicitPartitioner) ForTopic(string) kgo.TopicPartitioner { return p }

func (p *explicitPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p *explicitPartitioner) Partition(r *kgo.Record, n int) int {
	if int(r.Partition) >= n {
		p.invalid.Store(r, n)
		return -1
	}
	return int(r.Partition)
}

// rejected reports, once, whether r was refused for its partition, and how
// many partitions its topic has.
func (p *explicitPartitioner) rejected(r *kgo.Record) (int, bool) {
	n, ok := p.invalid.LoadAndDelete(r)
	if !ok {
		return 0, false
	}
	return n.(int), true
}

// report logs, once per topic, that messages name partitions the topic does
// not have: a configuration mismatch the operator must fix.
func (p *explicitPartitioner) report(log *service.Logger, topic string, n int) {
	if _, seen := p.reported.LoadOrStore(topic, struct{}{}); !seen {
		log.Errorf("Messages name partitions that topic %s does not have: it has %d. Check that the exchange_router's `partitions` (or the partition mapping) matches the topic; until then these messages fail with BUSINESS invalid_partition", topic, n)
	}
}
