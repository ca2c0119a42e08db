package redpanda

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"

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
)

// Produce retry backoff for transient broker errors.
const (
	produceBackoffBase = 100 * time.Millisecond
	produceBackoffMax  = 5 * time.Second
)

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
A batch is acknowledged only when every message of it is stored by all in-sync replicas. Transient broker errors (a leader moving, a broker restarting, a timeout) are retried inside the output with backoff until they succeed or the pipeline stops, so no message is dropped. A message the broker can never take (too large, invalid) fails alone with a BUSINESS error; rejected credentials or missing ACLs fail with a SECURITY error.`).
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
				Description("Explicit partition of each message, as an integer. When set, every message must resolve to a valid partition; when unset, partitions are chosen by key hash (murmur2, as Kafka's Java client does).").
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
	log         *service.Logger
	retries     *service.MetricCounter
	explicit    *explicitPartitioner

	mu           sync.RWMutex
	client       *kgo.Client
	connectTries int
}

func newWriterFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*writer, error) {
	w := &writer{
		log:      mgr.Logger(),
		retries:  mgr.Metrics().NewCounter("redpanda_output_retries"),
		explicit: &explicitPartitioner{},
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
	return w, nil
}

// Connect creates the producer and checks that the cluster answers with the
// configured credentials.
func (w *writer) Connect(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client != nil {
		return nil
	}
	opts := append(w.conn.clientOpts(),
		kgo.ProducerBatchCompression(w.compression),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProduceRequestTimeout(w.timeout),
	)
	if w.partition != nil {
		opts = append(opts, kgo.RecordPartitioner(w.explicit))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("redpanda output config: %w", err)
	}
	if err := ping(ctx, cl, w.timeout); err != nil {
		cl.Close()
		w.connectTries++
		classified := result.Classify(fmt.Errorf("reach %s: %w", w.conn.describe(), err))
		return service.NewErrBackOff(classified, connectBackoff(w.connectTries))
	}
	w.connectTries = 0
	w.client = cl
	return nil
}

// WriteBatch produces the batch and returns once every message is stored.
// Transient failures are retried here; messages that can never be stored
// fail alone in a batch error.
func (w *writer) WriteBatch(ctx context.Context, batch service.MessageBatch) error {
	w.mu.RLock()
	cl := w.client
	w.mu.RUnlock()
	if cl == nil {
		return service.ErrNotConnected
	}

	var batchErr *service.BatchError
	fail := func(i int, err error) {
		if batchErr == nil {
			batchErr = service.NewBatchError(batch, err)
		}
		batchErr.Failed(i, err)
	}
	pending := make([]int, 0, len(batch))
	records := make([]*kgo.Record, len(batch))
	fields := w.interpolators(batch)
	for i, msg := range batch {
		rec, err := w.record(fields, i, msg)
		if err != nil {
			fail(i, err)
			continue
		}
		records[i] = rec
		pending = append(pending, i)
	}

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
		var retry []int
		var lastErr error
		for _, res := range w.produce(ctx, cl, toSend) {
			if res.Err == nil {
				continue
			}
			i := indexOf[res.Record]
			classified := result.Classify(res.Err)
			if w.explicit.rejected(res.Record) {
				classified = result.Wrap(result.Business, "invalid_partition", res.Err, fmt.Sprintf("partition %d does not exist", res.Record.Partition))
			}
			if classified.Action() == result.Retry && ctx.Err() == nil {
				retry = append(retry, i)
				lastErr = classified
				continue
			}
			fail(i, fmt.Errorf("produce to %s: %w", res.Record.Topic, classified))
		}
		slices.Sort(retry)
		pending = retry
		if len(pending) == 0 {
			break
		}
		wait := min(produceBackoffBase<<min(attempt-1, 16), produceBackoffMax)
		w.retries.Incr(int64(len(pending)))
		w.log.Warnf("Retrying %d messages in %v: %v", len(pending), wait, lastErr)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			for _, i := range pending {
				fail(i, fmt.Errorf("produce to %s: %w", records[i].Topic, ctx.Err()))
			}
			pending = nil
		}
	}
	if batchErr != nil {
		return batchErr
	}
	return nil
}

// produce sends records and waits for each result, bounded by the timeout.
func (w *writer) produce(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) kgo.ProduceResults {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	return cl.ProduceSync(ctx, recs...)
}

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

// Close flushes and closes the producer.
func (w *writer) Close(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.client == nil {
		return nil
	}
	err := w.client.Flush(ctx)
	w.client.Close()
	w.client = nil
	return err
}

// explicitPartitioner sends each record to the partition set on it, and
// remembers the records whose partition does not exist, so that they fail as
// BUSINESS errors rather than being retried.
type explicitPartitioner struct {
	invalid sync.Map // *kgo.Record → struct{}
}

func (p *explicitPartitioner) ForTopic(string) kgo.TopicPartitioner { return p }

func (p *explicitPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p *explicitPartitioner) Partition(r *kgo.Record, n int) int {
	if int(r.Partition) >= n {
		p.invalid.Store(r, struct{}{})
		return -1
	}
	return int(r.Partition)
}

// rejected reports, once, whether r was refused for its partition.
func (p *explicitPartitioner) rejected(r *kgo.Record) bool {
	_, ok := p.invalid.LoadAndDelete(r)
	return ok
}
