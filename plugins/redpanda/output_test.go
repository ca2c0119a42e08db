package redpanda

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

// connectedWriter parses yaml as a user's output config and connects it.
func connectedWriter(t *testing.T, yaml string) *writer {
	t.Helper()
	conf, err := outputSpec().ParseYAML(yaml, nil)
	require.NoError(t, err)
	w, err := newWriterFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, w.Connect(ctx))
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

func message(value string, meta map[string]string) *service.Message {
	m := service.NewMessage([]byte(value))
	for k, v := range meta {
		m.MetaSetMut(k, v)
	}
	return m
}

func TestOutputSetsKeyPartitionAndSelectedHeaders(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(4, "routed"))
	w := connectedWriter(t, fmt.Sprintf(`
seed_brokers: [ %q ]
topic: ${! @topic }
key: ${! @exchange }:${! @symbol }
partition: ${! @part }
metadata:
  include_prefixes: [ "qiflow_" ]
`, broker.SeedList()))

	batch := service.MessageBatch{
		message(`{"p":1}`, map[string]string{"topic": "routed", "exchange": "binance", "symbol": "BTC", "part": "3", "qiflow_source": "feed", "secret_note": "x"}),
		message(`{"p":2}`, map[string]string{"topic": "routed", "exchange": "kraken", "symbol": "ETH", "part": "0", "qiflow_source": "feed"}),
	}
	require.NoError(t, w.WriteBatch(context.Background(), batch))

	recs := broker.ConsumeAll(t, "routed")
	require.Len(t, recs, 2)
	byValue := map[string]*kgo.Record{}
	for _, r := range recs {
		byValue[string(r.Value)] = r
	}
	first := byValue[`{"p":1}`]
	require.NotNil(t, first)
	assert.Equal(t, "binance:BTC", string(first.Key))
	assert.Equal(t, int32(3), first.Partition)
	assert.Equal(t, []kgo.RecordHeader{{Key: "qiflow_source", Value: []byte("feed")}}, first.Headers, "only included metadata becomes headers")
	assert.Equal(t, int32(0), byValue[`{"p":2}`].Partition)
}

func TestOutputDefaultsToLZ4(t *testing.T) {
	conf, err := outputSpec().ParseYAML(`
seed_brokers: [ localhost:9092 ]
topic: t`, nil)
	require.NoError(t, err)
	w, err := newWriterFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	assert.Equal(t, kgo.Lz4Compression(), w.compression)
}

func TestOutputFailsOnlyMessagesThatCanNeverBeWritten(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(3, "three"))
	w := connectedWriter(t, fmt.Sprintf(`
seed_brokers: [ %q ]
topic: three
partition: ${! @part }
`, broker.SeedList()))

	batch := service.MessageBatch{
		message("good-0", map[string]string{"part": "0"}),
		message("no-such-partition", map[string]string{"part": "99"}),
		message("not-a-number", map[string]string{"part": "two"}),
		message("good-2", map[string]string{"part": "2"}),
	}
	index := batch.Index()
	err := w.WriteBatch(context.Background(), batch)
	var batchErr *service.BatchError
	require.ErrorAs(t, err, &batchErr)
	failed := map[int]error{}
	batchErr.WalkMessagesIndexedBy(index, func(i int, _ *service.Message, err error) bool {
		if err != nil {
			failed[i] = err
		}
		return true
	})
	require.Len(t, failed, 2, "%v", failed)
	for _, i := range []int{1, 2} {
		assert.Equal(t, result.Business, result.CategoryOf(failed[i]), "message %d: %v", i, failed[i])
	}
	assert.Contains(t, failed[1].Error(), "partition 99 does not exist")
	assert.Contains(t, failed[2].Error(), `partition "two" is not a non-negative integer`)

	var values []string
	for _, r := range broker.ConsumeAll(t, "three") {
		values = append(values, string(r.Value))
	}
	assert.ElementsMatch(t, []string{"good-0", "good-2"}, values, "the good messages are written")
}

func TestOutputRetriesThroughABrokerRestart(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithDataDir(t.TempDir()), testenv.WithTopics(2, "durable"))
	w := connectedWriter(t, fmt.Sprintf(`
seed_brokers: [ %q ]
topic: durable
timeout: 1s
`, broker.SeedList()))

	broker.Stop(t)
	var batch service.MessageBatch
	for i := range 100 {
		batch = append(batch, message(strconv.Itoa(i), nil))
	}
	done := make(chan error, 1)
	go func() { done <- w.WriteBatch(context.Background(), batch) }()
	select {
	case err := <-done:
		t.Fatalf("the write gave up while the broker was down: %v", err)
	case <-time.After(2 * time.Second):
	}
	broker.Start(t)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("the write never completed after the broker came back")
	}

	seen := map[string]int{}
	for _, r := range broker.ConsumeAll(t, "durable") {
		seen[string(r.Value)]++
	}
	assert.Len(t, seen, 100, "every message is stored")
	for v, n := range seen {
		assert.Equal(t, 1, n, "message %s is stored once", v)
	}
}

func TestOutputGivesUpOnlyAtShutdown(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithDataDir(t.TempDir()), testenv.WithTopics(1, "gone"))
	w := connectedWriter(t, fmt.Sprintf(`
seed_brokers: [ %q ]
topic: gone
timeout: 500ms
`, broker.SeedList()))
	broker.Stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := w.WriteBatch(ctx, service.MessageBatch{message("x", nil)})
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "the write ends with the pipeline's context: %v", err)
}

// A drain of the stream interrupts the output's retries: with the broker
// gone, WriteBatch returns soon after Drain, and the messages stay
// unacknowledged.
func TestOutputStopsRetryingWhenTheStreamDrains(t *testing.T) {
	const bound = time.Second
	broker := testenv.NewBroker(t, testenv.WithDataDir(t.TempDir()), testenv.WithTopics(1, "gone"))
	w := connectedWriter(t, fmt.Sprintf(`
seed_brokers: [ %q ]
topic: gone
timeout: 30s
`, broker.SeedList()))
	// After a first write the producer has its ID, and franz-go holds on to
	// records for a broker that went away instead of failing them.
	require.NoError(t, w.WriteBatch(context.Background(), service.MessageBatch{message("first", nil)}))
	broker.Stop(t)

	done := make(chan error, 1)
	go func() {
		done <- w.WriteBatch(context.Background(), service.MessageBatch{message("x", nil), message("y", nil)})
	}()
	select {
	case err := <-done:
		t.Fatalf("the write gave up before the drain: %v", err)
	case <-time.After(2 * time.Second):
	}
	drained := time.Now()
	w.scope.Drain()
	select {
	case err := <-done:
		t.Logf("WriteBatch returned %v after Drain (bound %v)", time.Since(drained).Round(time.Microsecond), bound)
		require.Error(t, err)
		assert.ErrorIs(t, err, errStopping)
		assert.Equal(t, result.Retry, result.ActionOf(err), "a stop is no reason to dead-letter: %v", err)
	case <-time.After(bound):
		t.Fatalf("WriteBatch still retrying %v after Drain", bound)
	}
}

// A drain also ends the wait between connection attempts, which Benthos's
// own connect loop would only end at its soft stop.
func TestOutputStopsConnectingWhenTheStreamDrains(t *testing.T) {
	const bound = time.Second
	conf, err := outputSpec().ParseYAML(fmt.Sprintf(`
seed_brokers: [ "127.0.0.1:%d" ]
topic: t
timeout: 200ms
`, testenv.FreePort(t)), nil)
	require.NoError(t, err)
	w, err := newWriterFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	require.Error(t, w.Connect(context.Background()), "nothing listens")

	done := make(chan error, 1)
	go func() { done <- w.Connect(context.Background()) }() // waits out the backoff first
	time.Sleep(200 * time.Millisecond)
	drained := time.Now()
	w.scope.Drain()
	select {
	case err := <-done:
		t.Logf("Connect returned after %v (bound %v)", time.Since(drained).Round(time.Microsecond), bound)
		require.NoError(t, err, "a draining output connects no more")
	case <-time.After(bound):
		t.Fatalf("Connect still waiting %v after Drain", bound)
	}
	err = w.WriteBatch(context.Background(), service.MessageBatch{message("x", nil)})
	assert.ErrorIs(t, err, errStopping, "what still arrives is refused, not written")
}

// A SECURITY error at write (here the broker refuses the topic) halts the
// stream instead of failing the batch for a replay that can never succeed.
func TestOutputHaltsTheStreamOnASecurityErrorAtWrite(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "guarded"))
	w := connectedWriter(t, fmt.Sprintf(`
seed_brokers: [ %q ]
topic: guarded
`, broker.SeedList()))
	c := broker.Cluster()
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		produce := req.(*kmsg.ProduceRequest)
		resp := produce.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range produce.Topics {
			topic := kmsg.NewProduceResponseTopic()
			topic.Topic, topic.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				p := kmsg.NewProduceResponseTopicPartition()
				p.Partition = rp.Partition
				p.ErrorCode = kerr.TopicAuthorizationFailed.Code
				topic.Partitions = append(topic.Partitions, p)
			}
			resp.Topics = append(resp.Topics, topic)
		}
		return resp, nil, true
	})

	err := w.WriteBatch(context.Background(), service.MessageBatch{message("x", nil)})
	require.Error(t, err)
	assert.Equal(t, result.Security, result.CategoryOf(err), "%v", err)
	halted := w.scope.Halted()
	require.Error(t, halted, "the stream halts")
	assert.ErrorContains(t, halted, "TOPIC_AUTHORIZATION_FAILED")
	err = w.WriteBatch(context.Background(), service.MessageBatch{message("y", nil)})
	assert.ErrorIs(t, err, halted, "a halted output writes nothing more")
}

func TestAWriteWhoseContextEndsDeadLettersNothingAndCloseReturns(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithDataDir(t.TempDir()), testenv.WithTopics(1, "gone"))
	letters := testenv.NewBroker(t, testenv.WithTopics(1, "gone.dlq"))
	w := connectedWriter(t, fmt.Sprintf(`
seed_brokers: [ %q ]
topic: gone
timeout: 30s
dead_letter:
  redpanda:
    seed_brokers: [ %q ]
    topic: gone.dlq
`, broker.SeedList(), letters.SeedList()))
	// After a first write the producer has its ID, and franz-go holds on to
	// records for a broker that went away: the context ends mid-produce.
	require.NoError(t, w.WriteBatch(context.Background(), service.MessageBatch{message("first", nil)}))
	broker.Stop(t)

	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	err := w.WriteBatch(ctx, service.MessageBatch{message("x", nil), message("y", nil)})
	require.Error(t, err, "nothing was written")
	assert.Equal(t, result.Retry, result.ActionOf(err), "the messages are replayed: %v", err)
	assert.Empty(t, letters.ConsumeAll(t, "gone.dlq"), "a write that ran out of time is no dead letter")

	// franz-go still holds the records given up on: a flush would wait for
	// them forever (it did, before).
	closed := make(chan error, 1)
	began := time.Now()
	go func() { closed <- w.Close(context.Background()) }()
	select {
	case <-closed:
		t.Logf("Close returned in %v", time.Since(began).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("Close waits for records the write gave up on")
	}
}
