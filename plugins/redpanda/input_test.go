package redpanda

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

// logBuffer collects a stream's log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) lines(substr string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.buf.String(), "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return out
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// runningStream is a stream started by startStream.
type runningStream struct {
	stream *service.Stream
	done   chan error
	logs   *logBuffer
}

// stop stops the stream gracefully and returns what Run returned.
func (s *runningStream) stop(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, s.stream.Stop(ctx))
	return <-s.done
}

// startStream runs a stream with the given input YAML and either an output
// YAML or a batch consumer.
func startStream(t *testing.T, inputYAML, outputYAML string, consume service.MessageBatchHandlerFunc) *runningStream {
	t.Helper()
	b := service.NewStreamBuilder()
	logs := &logBuffer{}
	b.SetLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, b.AddInputYAML(inputYAML))
	if consume != nil {
		require.NoError(t, b.AddBatchConsumerFunc(consume))
	} else {
		require.NoError(t, b.AddOutputYAML(outputYAML))
	}
	stream, err := b.Build()
	require.NoError(t, err)
	s := &runningStream{stream: stream, done: make(chan error, 1), logs: logs}
	go func() { s.done <- stream.Run(context.Background()) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stream.StopWithin(time.Until(deadlineOf(ctx)))
		if t.Failed() {
			t.Logf("stream log:\n%s", logs.String())
		}
	})
	return s
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func inputYAML(seeds, topic, group string, extra ...string) string {
	y := fmt.Sprintf(`
redpanda:
  seed_brokers: [ %q ]
  topics: [ %s ]
  consumer_group: %s
  commit_period: 100ms
`, seeds, topic, group)
	for _, e := range extra {
		y += "  " + e + "\n"
	}
	return y
}

// waitForCommitted waits until the group has committed every partition of
// topic to its end.
func waitForCommitted(t *testing.T, broker *testenv.Broker, group, topic string, timeout time.Duration) {
	t.Helper()
	broker.WaitForCommit(t, group, topic, timeout, nil)
}

// produceKeyed writes n records spread by key over the topic's partitions;
// each value is its sequence number.
func produceKeyed(t *testing.T, broker *testenv.Broker, topic string, n int) {
	broker.ProduceN(t, topic, n, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte("k" + strconv.Itoa(i%97)), Value: []byte(strconv.Itoa(i))}
	})
}

func valuesByPartition(recs []*kgo.Record) map[int32][]string {
	out := map[int32][]string{}
	for _, r := range recs {
		out[r.Partition] = append(out[r.Partition], string(r.Value))
	}
	return out
}

func TestPassThroughKeepsEveryMessageInPartitionOrder(t *testing.T) {
	const n = 50_000
	broker := testenv.NewBroker(t, testenv.WithTopics(12, "in", "out"))
	produceKeyed(t, broker, "in", n)

	s := startStream(t,
		inputYAML(broker.SeedList(), "in", "pass"),
		fmt.Sprintf(`
redpanda:
  seed_brokers: [ %q ]
  topic: out
  key: ${! @kafka_key }
  partition: ${! @kafka_partition }
  max_in_flight: 1
`, broker.SeedList()), nil)

	waitForCommitted(t, broker, "pass", "in", 60*time.Second)
	require.NoError(t, s.stop(t))

	in := valuesByPartition(broker.ConsumeAll(t, "in"))
	out := valuesByPartition(broker.ConsumeAll(t, "out"))
	total := 0
	for p, want := range in {
		assert.Equal(t, want, out[p], "partition %d arrives complete and in order", p)
		total += len(out[p])
	}
	assert.Equal(t, n, total)
}

// writeLog records which offsets a test output has written.
type writeLog struct {
	mu      sync.Mutex
	written map[int32]map[int64]int // partition → offset → times written
	order   map[int32][]int64       // partition → offsets in first-write order
}

func newWriteLog() *writeLog {
	return &writeLog{written: map[int32]map[int64]int{}, order: map[int32][]int64{}}
}

func (w *writeLog) record(msgs ...*service.Message) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range msgs {
		p, _ := m.MetaGet(metaPartition)
		o, _ := m.MetaGet(metaOffset)
		part, _ := strconv.Atoi(p)
		off, _ := strconv.ParseInt(o, 10, 64)
		if w.written[int32(part)] == nil {
			w.written[int32(part)] = map[int64]int{}
		}
		if w.written[int32(part)][off] == 0 {
			w.order[int32(part)] = append(w.order[int32(part)], off)
		}
		w.written[int32(part)][off]++
	}
}

// missingBelow returns the first offset below committed that was never
// written, or -1.
func (w *writeLog) missingBelow(partition int32, committed int64) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for o := int64(0); o < committed; o++ {
		if w.written[partition][o] == 0 {
			return o
		}
	}
	return -1
}

func (w *writeLog) distinct() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, offs := range w.written {
		n += len(offs)
	}
	return n
}

// watchCommits checks, at the broker, every offset commit of group against
// what was written: a commit must never pass an unwritten message.
func watchCommits(broker *testenv.Broker, group string, written *writeLog) (commits, violations *atomic.Int64, firstViolation *atomic.Value) {
	commits, violations, firstViolation = &atomic.Int64{}, &atomic.Int64{}, &atomic.Value{}
	broker.Cluster().ControlKey(int16(kmsg.OffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		commit := req.(*kmsg.OffsetCommitRequest)
		if commit.Group != group {
			return nil, nil, false
		}
		for _, topic := range commit.Topics {
			for _, p := range topic.Partitions {
				commits.Add(1)
				if missing := written.missingBelow(p.Partition, p.Offset); missing >= 0 {
					violations.Add(1)
					firstViolation.CompareAndSwap(nil, fmt.Sprintf("commit of %s/%d at %d passes unwritten offset %d", topic.Topic, p.Partition, p.Offset, missing))
				}
			}
		}
		return nil, nil, false
	})
	return commits, violations, firstViolation
}

// flakyWriter fails about batchFailRate of its writes outright and, in the
// writes it takes, fails single messages at msgFailRate.
func flakyWriter(written *writeLog, batchFailRate, msgFailRate float64, seed uint64) service.MessageBatchHandlerFunc {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed))
	roll := func(rate float64) bool {
		mu.Lock()
		defer mu.Unlock()
		return rng.Float64() < rate
	}
	return func(_ context.Context, batch service.MessageBatch) error {
		if roll(batchFailRate) {
			return errors.New("injected write failure")
		}
		var batchErr *service.BatchError
		for i, msg := range batch {
			if roll(msgFailRate) {
				if batchErr == nil {
					batchErr = service.NewBatchError(batch, errors.New("injected message failure"))
				}
				batchErr.Failed(i, errors.New("injected message failure"))
				continue
			}
			written.record(msg)
		}
		if batchErr != nil {
			return batchErr
		}
		return nil
	}
}

func TestNackedMessagesAreReplayedAndNeverCommittedPast(t *testing.T) {
	const n = 20_000
	broker := testenv.NewBroker(t, testenv.WithTopics(12, "flaky"))
	produceKeyed(t, broker, "flaky", n)
	written := newWriteLog()
	commits, violations, first := watchCommits(broker, "flaky-group", written)

	s := startStream(t,
		inputYAML(broker.SeedList(), "flaky", "flaky-group", "batch_count: 64", "checkpoint_limit: 512"),
		"", flakyWriter(written, 0.3, 0.005, 1))

	waitForCommitted(t, broker, "flaky-group", "flaky", 120*time.Second)
	require.NoError(t, s.stop(t))

	assert.Equal(t, n, written.distinct(), "every message is written")
	assert.Positive(t, commits.Load(), "the broker saw commits to check")
	assert.Zero(t, violations.Load(), "a commit passed an unwritten message: %v", first.Load())
	t.Logf("%d partition commits checked, %d replayed deliveries in total", commits.Load(), replayedDeliveries(written))
}

func replayedDeliveries(w *writeLog) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, offs := range w.written {
		for _, times := range offs {
			n += times - 1
		}
	}
	return n
}

func TestStrictOrderAcrossReplaysWhenOneBatchPerPartition(t *testing.T) {
	const n = 5_000
	broker := testenv.NewBroker(t, testenv.WithTopics(6, "ordered"))
	produceKeyed(t, broker, "ordered", n)
	written := newWriteLog()

	s := startStream(t,
		inputYAML(broker.SeedList(), "ordered", "ordered-group", "batch_count: 50", "checkpoint_limit: 50"),
		"", flakyWriter(written, 0.3, 0, 2))

	waitForCommitted(t, broker, "ordered-group", "ordered", 120*time.Second)
	require.NoError(t, s.stop(t))

	require.Equal(t, n, written.distinct())
	for p, order := range written.order {
		for i := 1; i < len(order); i++ {
			require.Equal(t, order[i-1]+1, order[i], "partition %d: offset %d was first written after %d", p, order[i], order[i-1])
		}
	}
}

func TestRebalanceLosesNothing(t *testing.T) {
	const n = 30_000
	broker := testenv.NewBroker(t, testenv.WithTopics(12, "shared"))
	produceKeyed(t, broker, "shared", n)
	written := newWriteLog()
	slowWriter := func(_ context.Context, batch service.MessageBatch) error {
		time.Sleep(5 * time.Millisecond)
		written.record(batch...)
		return nil
	}
	conf := inputYAML(broker.SeedList(), "shared", "shared-group", "batch_count: 100", "checkpoint_limit: 200")

	first := startStream(t, conf, "", slowWriter)
	require.Eventually(t, func() bool { return written.distinct() > n/5 }, 60*time.Second, 20*time.Millisecond)

	second := startStream(t, conf, "", slowWriter)
	require.Eventually(t, func() bool { return written.distinct() > n/2 }, 60*time.Second, 20*time.Millisecond)
	require.NoError(t, second.stop(t))

	waitForCommitted(t, broker, "shared-group", "shared", 120*time.Second)
	require.NoError(t, first.stop(t))

	assert.Equal(t, n, written.distinct(), "no message is lost across the join and the leave")
	assert.NotEmpty(t, second.logs.lines("Consuming"), "the second member took part")
	t.Logf("%d duplicate deliveries across two rebalances", replayedDeliveries(written))
}

func TestUnreachableBrokerIsRetriedWithOneClearLinePerAttempt(t *testing.T) {
	port := testenv.FreePort(t)
	seeds := fmt.Sprintf("127.0.0.1:%d", port)
	s := startStream(t, inputYAML(seeds, "crypto-prices", "nobody"), "", func(context.Context, service.MessageBatch) error { return nil })

	time.Sleep(4 * time.Second)
	lines := s.logs.lines("reach brokers " + seeds)
	require.NotEmpty(t, lines, "the log names the brokers that cannot be reached:\n%s", s.logs)
	assert.Contains(t, lines[0], "connection refused")
	assert.Contains(t, lines[0], "EXTERNAL")
	assert.LessOrEqual(t, len(lines), 4, "attempts back off instead of spinning")
	select {
	case err := <-s.done:
		t.Fatalf("the stream gave up on an unreachable broker: %v", err)
	default:
	}
}

func TestWrongCredentialsStopThePipelineWithSecurity(t *testing.T) {
	result.ResetHalt()
	t.Cleanup(result.ResetHalt)
	broker := testenv.NewBroker(t, testenv.WithSASL("PLAIN", "qiflow", "right"), testenv.WithTopics(1, "secured"))
	s := startStream(t, inputYAML(broker.SeedList(), "secured", "g",
		"sasl: { mechanism: PLAIN, user: qiflow, password: not-the-password }"), "",
		func(context.Context, service.MessageBatch) error { return nil })

	select {
	case err := <-s.done:
		require.NoError(t, err, "the stream ends by itself")
	case <-time.After(30 * time.Second):
		t.Fatalf("the stream kept running with rejected credentials:\n%s", s.logs)
	}
	lines := s.logs.lines("Stopping the redpanda input")
	require.Len(t, lines, 1, "exactly one line explains the stop:\n%s", s.logs)
	assert.Contains(t, lines[0], "SECURITY")
	assert.Contains(t, lines[0], "SASL_AUTHENTICATION_FAILED")
	assert.Empty(t, s.logs.lines("Failed to connect"), "rejected credentials are not retried")
	assert.NotContains(t, s.logs.String(), "not-the-password", "the password never reaches the log")
	require.Error(t, result.Halted())
	assert.Equal(t, result.Security, result.CategoryOf(result.Halted()))
}

func TestRightCredentialsConsume(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithSASL("SCRAM-SHA-512", "qiflow", "right"), testenv.WithTopics(2, "secured"))
	produceKeyed(t, broker, "secured", 100)
	written := newWriteLog()
	s := startStream(t, inputYAML(broker.SeedList(), "secured", "g",
		"sasl: { mechanism: SCRAM-SHA-512, user: qiflow, password: right }"), "",
		func(_ context.Context, b service.MessageBatch) error {
			written.record(b...)
			return nil
		})
	waitForCommitted(t, broker, "g", "secured", 30*time.Second)
	require.NoError(t, s.stop(t))
	assert.Equal(t, 100, written.distinct())
}

func TestMissingTopicIsNamedAndConsumedOnceCreated(t *testing.T) {
	broker := testenv.NewBroker(t)
	written := newWriteLog()
	s := startStream(t, inputYAML(broker.SeedList(), "late-topic", "late"), "", func(_ context.Context, b service.MessageBatch) error {
		written.record(b...)
		return nil
	})
	require.Eventually(t, func() bool {
		return len(s.logs.lines(`topic \"late-topic\" does not exist`)) > 0
	}, 10*time.Second, 50*time.Millisecond, "the log names the missing topic:\n%s", s.logs)
	assert.Empty(t, s.logs.lines("Stopping"), "a missing topic is waited for, not fatal")

	broker.CreateTopic(t, "late-topic", 3)
	produceKeyed(t, broker, "late-topic", 300)
	waitForCommitted(t, broker, "late", "late-topic", 60*time.Second)
	require.NoError(t, s.stop(t))
	assert.Equal(t, 300, written.distinct())
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
		// brokerless runs the case under a profile without brokers.
		brokerless bool
	}{
		{"no brokers", `
seed_brokers: [ "" ]
topics: [ a ]
consumer_group: g`, "seed_brokers: at least one broker address is required (none in the pipeline or the development profile)", true},
		{"no group", `
seed_brokers: [ localhost:9092 ]
topics: [ a ]
consumer_group: ""`, "consumer_group must not be empty", false},
		{"bad regexp", `
seed_brokers: [ localhost:9092 ]
topics: [ "(" ]
regexp_topics: true
consumer_group: g`, `"(" is not a regular expression`, false},
		{"sasl without user", `
seed_brokers: [ localhost:9092 ]
topics: [ a ]
consumer_group: g
sasl: { mechanism: PLAIN }`, "sasl: mechanism PLAIN needs a user", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.brokerless {
				useProfile(t, profile.Development, func(p *profile.Profile) { p.Redpanda.Brokers = nil })
			}
			conf, err := inputSpec().ParseYAML(tt.yaml, nil)
			require.NoError(t, err)
			_, err = newReaderFromConfig(conf, service.MockResources())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestSASLMechanismDefaultsToScramWhenAUserIsSet(t *testing.T) {
	conf, err := inputSpec().ParseYAML(`
seed_brokers: [ "a:1,b:2", c:3 ]
topics: [ t ]
consumer_group: g
sasl: { user: u, password: p }`, nil)
	require.NoError(t, err)
	r, err := newReaderFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	assert.Equal(t, []string{"a:1", "b:2", "c:3"}, r.conf.conn.seeds)
	require.NotNil(t, r.conf.conn.sasl)
	assert.Equal(t, "SCRAM-SHA-256", r.conf.conn.sasl.Name())
}

func TestBrokerRestartMidStreamLosesNothing(t *testing.T) {
	const n = 20_000
	broker := testenv.NewBroker(t, testenv.WithDataDir(t.TempDir()), testenv.WithTopics(6, "restarting"))
	produceKeyed(t, broker, "restarting", n)
	written := newWriteLog()
	s := startStream(t, inputYAML(broker.SeedList(), "restarting", "restart-group", "batch_count: 100", "checkpoint_limit: 400"), "",
		func(_ context.Context, b service.MessageBatch) error {
			time.Sleep(2 * time.Millisecond)
			written.record(b...)
			return nil
		})
	require.Eventually(t, func() bool { return written.distinct() > n/4 }, 60*time.Second, 10*time.Millisecond)

	broker.Stop(t)
	time.Sleep(2 * time.Second)
	broker.Start(t)

	waitForCommitted(t, broker, "restart-group", "restarting", 120*time.Second)
	require.NoError(t, s.stop(t))
	assert.Equal(t, n, written.distinct(), "every message is delivered after the broker comes back")
	t.Logf("%d duplicate deliveries across the broker restart", replayedDeliveries(written))
	assert.LessOrEqual(t, replayedDeliveries(written), 6*400, "duplicates stay within checkpoint_limit per partition")
}
