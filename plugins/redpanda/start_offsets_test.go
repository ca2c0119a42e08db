package redpanda

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/exactlyonce"
	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

// databaseOffsets is an exactlyonce.Store that answers the same offsets
// for every topic and group, as a database in exactly-once mode would.
type databaseOffsets map[int32]int64

func (d databaseOffsets) NextOffsets(context.Context, string, string, []int32) (map[int32]int64, error) {
	return d, nil
}

// storeUnderTest is what the test_offsets_store output provides to its
// stream's input, and offsetsWritten what it was handed.
var (
	storeUnderTest atomic.Pointer[databaseOffsets]
	offsetsWritten struct {
		sync.Mutex
		offsets []int64
	}
)

// offsetsOutput stands in for a timescale output in exactly-once mode: it
// keeps the stream's offsets (the Store) and records what it is handed.
type offsetsOutput struct{}

func (offsetsOutput) Connect(context.Context) error { return nil }
func (offsetsOutput) Close(context.Context) error   { return nil }
func (offsetsOutput) WriteBatch(_ context.Context, b service.MessageBatch) error {
	offsetsWritten.Lock()
	defer offsetsWritten.Unlock()
	for _, m := range b {
		v, _ := m.MetaGetMut(metaOffset)
		offsetsWritten.offsets = append(offsetsWritten.offsets, v.(int64))
	}
	return nil
}

func init() {
	err := service.RegisterBatchOutput("test_offsets_store", service.NewConfigSpec(),
		func(_ *service.ParsedConfig, mgr *service.Resources) (service.BatchOutput, service.BatchPolicy, int, error) {
			link := exactlyonce.LinkOf(mgr)
			link.Want()
			link.Provide(*storeUnderTest.Load())
			return offsetsOutput{}, service.BatchPolicy{}, 1, nil
		})
	if err != nil {
		panic(err)
	}
}

func runWithDatabaseOffsets(t *testing.T, offsets databaseOffsets) (*runningStream, *testenv.Broker) {
	t.Helper()
	result.ResetHalt()
	t.Cleanup(result.ResetHalt)
	offsetsWritten.Lock()
	offsetsWritten.offsets = nil
	offsetsWritten.Unlock()
	storeUnderTest.Store(&offsets)
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "ticks"))
	broker.ProduceN(t, "ticks", 100, func(i int) *kgo.Record { return &kgo.Record{Value: []byte("x")} })
	return startStream(t, inputYAML(broker.SeedList(), "ticks", "g"), "test_offsets_store: {}", nil), broker
}

func TestPartitionsStartWhereTheDatabaseSays(t *testing.T) {
	s, _ := runWithDatabaseOffsets(t, databaseOffsets{0: 40})
	require.Eventually(t, func() bool {
		offsetsWritten.Lock()
		defer offsetsWritten.Unlock()
		return len(offsetsWritten.offsets) == 60
	}, 30*time.Second, 20*time.Millisecond, "the messages from the database's offset on:\n%s", s.logs)
	offsetsWritten.Lock()
	assert.Equal(t, int64(40), offsetsWritten.offsets[0], "the first message handed on is the database's next")
	offsetsWritten.Unlock()
	assert.Len(t, s.logs.lines("Starting ticks/0 at offset 40, the database's"), 1)
	require.NoError(t, s.stop(t))
}

func TestAPositionResetBelowTheDatabasesOffsetStopsTheStream(t *testing.T) {
	// The database says 500, but the topic holds offsets 0 to 99 (it was
	// recreated): franz-go resets to the start, and every message would be
	// taken for written.
	s, _ := runWithDatabaseOffsets(t, databaseOffsets{0: 500})
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the stream kept running:\n%s", s.logs)
	}
	lines := s.logs.lines("Stopping the redpanda input")
	require.Len(t, lines, 1, "%s", s.logs)
	assert.Contains(t, lines[0], "offsets_reset")
	assert.Contains(t, lines[0], "ticks/0 was started at offset 500")
	offsetsWritten.Lock()
	assert.Empty(t, offsetsWritten.offsets, "nothing is handed on to be skipped")
	offsetsWritten.Unlock()
}

func TestTheGroupsCommitFollowsTheDatabaseWithNothingToConsume(t *testing.T) {
	// The database holds every message already (a crash after the write,
	// before the group's commit): the group is committed to its offset at
	// once, so that lag monitoring shows no lag.
	s, broker := runWithDatabaseOffsets(t, databaseOffsets{0: 100})
	require.Eventually(t, func() bool {
		return broker.CommittedOffsets(t, "g", "ticks")[0] == 100
	}, 30*time.Second, 50*time.Millisecond, "the group stays behind the database:\n%s", s.logs)
	offsetsWritten.Lock()
	assert.Empty(t, offsetsWritten.offsets)
	offsetsWritten.Unlock()
	require.NoError(t, s.stop(t))
}
