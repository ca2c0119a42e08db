package redpanda

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qicore/qiflow/internal/testenv"
)

// answerOnce makes the broker answer the next request of key from group with
// code, once: what a real broker answers a member whose session expired.
// It returns a counter of the requests so answered.
func answerOnce(t *testing.T, broker *testenv.Broker, key kmsg.Key, group string, code *kerr.Error, after func() bool) *atomic.Int64 {
	t.Helper()
	answered := &atomic.Int64{}
	broker.Cluster().ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if !after() || answered.Load() > 0 {
			return nil, nil, false
		}
		resp := req.ResponseKind()
		resp.SetVersion(req.GetVersion())
		switch req := req.(type) {
		case *kmsg.HeartbeatRequest:
			if req.Group != group {
				return nil, nil, false
			}
			resp.(*kmsg.HeartbeatResponse).ErrorCode = code.Code
		case *kmsg.OffsetCommitRequest:
			if req.Group != group {
				return nil, nil, false
			}
			commit := resp.(*kmsg.OffsetCommitResponse)
			for _, topic := range req.Topics {
				rt := kmsg.NewOffsetCommitResponseTopic()
				rt.Topic = topic.Topic
				for _, p := range topic.Partitions {
					rp := kmsg.NewOffsetCommitResponseTopicPartition()
					rp.Partition = p.Partition
					rp.ErrorCode = code.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				commit.Topics = append(commit.Topics, rt)
			}
		default:
			t.Errorf("answerOnce cannot answer %T", req)
			return nil, nil, false
		}
		answered.Add(1)
		return resp, nil, true
	})
	return answered
}

func TestExpiredGroupSessionRejoinsAndKeepsConsuming(t *testing.T) {
	const n = 20_000
	broker := testenv.NewBroker(t, testenv.WithTopics(6, "session"))
	produceKeyed(t, broker, "session", n)
	written := newWriteLog()
	started := func() bool { return written.distinct() > n/10 }
	heartbeats := answerOnce(t, broker, kmsg.Heartbeat, "session-group", kerr.UnknownMemberID, started)
	commits := answerOnce(t, broker, kmsg.OffsetCommit, "session-group", kerr.IllegalGeneration, started)

	s := startStream(t,
		inputYAML(broker.SeedList(), "session", "session-group", "batch_count: 100", "checkpoint_limit: 400", "session_timeout: 6s"),
		"", func(_ context.Context, batch service.MessageBatch) error {
			time.Sleep(2 * time.Millisecond)
			written.record(batch...)
			return nil
		})

	waitForCommitted(t, broker, "session-group", "session", 120*time.Second)
	require.NoError(t, s.stop(t))

	assert.EqualValues(t, 1, heartbeats.Load(), "one heartbeat was answered UNKNOWN_MEMBER_ID")
	assert.EqualValues(t, 1, commits.Load(), "one commit was answered ILLEGAL_GENERATION")
	assert.Equal(t, n, written.distinct(), "every message is written after the rejoin")
	assert.Empty(t, s.logs.lines("Stopping the redpanda input"), "an expired session does not stop the input")
	assert.NotEmpty(t, s.logs.lines(codeGroupSessionEnded), "the session's end is logged")
	t.Logf("%d messages delivered again after the session ended", replayedDeliveries(written))
}

func TestOnlySecurityAndConfigurationErrorsStopThePoll(t *testing.T) {
	cases := []struct {
		err   error
		stops bool
	}{
		{&kgo.ErrGroupSession{Err: kerr.UnknownMemberID}, false},
		{&kgo.ErrGroupSession{Err: kerr.IllegalGeneration}, false},
		{&kgo.ErrGroupSession{Err: kerr.RebalanceInProgress}, false},
		{&kgo.ErrGroupSession{Err: kerr.GroupAuthorizationFailed}, true},
		{&kgo.ErrGroupSession{Err: kerr.InvalidSessionTimeout}, true},
		{kerr.TopicAuthorizationFailed, true},
		{kerr.NotLeaderForPartition, false},
	}
	for _, c := range cases {
		classified, stops := classifyPollError(c.err)
		assert.Equal(t, c.stops, stops, "%v: %v", c.err, classified)
	}
}

// A resume that lands between a pause's decision and its call must not
// leave the partition paused: the hook holds pollLoop right there while
// ReadBatch drains the partition and would resume it.
func TestPauseAndResumeNeverInterleave(t *testing.T) {
	const n = 6_000
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "paused"))
	for i := 0; i < n; i += 30 { // small record batches: a fetch holds a few
		recs := make([]*kgo.Record, 30)
		for j := range recs {
			recs[j] = &kgo.Record{Value: []byte(strconv.Itoa(i + j))}
		}
		broker.Produce(t, "paused", recs...)
	}
	var decided atomic.Int64
	testHookPauseDecided = func() {
		if decided.Add(1) == 1 {
			// Long enough for ReadBatch to drain the buffer, commit by
			// commit, and decide to resume.
			time.Sleep(2 * time.Second)
		}
	}
	t.Cleanup(func() { testHookPauseDecided = nil })
	written := newWriteLog()

	s := startStream(t,
		inputYAML(broker.SeedList(), "paused", "paused-group", "batch_count: 10", "checkpoint_limit: 10", "fetch_max_partition_bytes: 512", "fetch_max_wait: 50ms"),
		"", func(_ context.Context, batch service.MessageBatch) error {
			written.record(batch...)
			return nil
		})

	waitForCommitted(t, broker, "paused-group", "paused", 60*time.Second)
	require.NoError(t, s.stop(t))
	assert.Equal(t, n, written.distinct(), "the partition kept flowing")
	assert.Positive(t, decided.Load(), "the partition was paused, so the race was there to lose")
}

// With checkpoint_limit equal to batch_count (strict order), a window that
// declines new records while acked ones wait commits at once instead of at
// the next commit period (here an hour).
func TestStrictOrderWindowCommitsWhenItHasNoRoom(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "strict"))
	written := newWriteLog()
	conf := fmt.Sprintf(`
redpanda:
  seed_brokers: [ %q ]
  topics: [ strict ]
  consumer_group: strict-group
  commit_period: 1h
  batch_count: 100
  checkpoint_limit: 100
`, broker.SeedList())
	s := startStream(t, conf, "",
		func(_ context.Context, batch service.MessageBatch) error {
			written.record(batch...)
			return nil
		})

	produceKeyed(t, broker, "strict", 30) // a partial batch: acked, not half the window
	require.Eventually(t, func() bool { return written.distinct() == 30 }, 30*time.Second, 10*time.Millisecond)
	produceKeyed(t, broker, "strict", 1_000)

	began := time.Now()
	require.Eventually(t, func() bool { return written.distinct() == 1_030 }, 20*time.Second, 10*time.Millisecond,
		"the window idled: %d of 1030 written", written.distinct())
	t.Logf("1,000 records through a strict-order window in %v", time.Since(began).Round(time.Millisecond))
	require.NoError(t, s.stop(t))
}
