package redpanda

import (
	"fmt"
	"regexp"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
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
Messages come in batches of one partition each. Every message carries the metadata `+"`kafka_key`, `kafka_topic`"+` (strings), `+"`kafka_partition`, `kafka_offset`, `kafka_timestamp_unix_ms`"+` (integers) and its record headers (strings).

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
