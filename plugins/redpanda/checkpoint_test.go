package redpanda

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
)

func records(from, to int64) []*kgo.Record {
	var recs []*kgo.Record
	for o := from; o < to; o++ {
		recs = append(recs, &kgo.Record{Offset: o, LeaderEpoch: 3})
	}
	return recs
}

func offsets(recs []*kgo.Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

func TestWindowCommitsOnlyTheContiguousAckedPrefix(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 10), now)
	first := w.next(5, now)
	second := w.next(5, now)
	require.Equal(t, []int64{0, 1, 2, 3, 4}, offsets(first))
	require.Equal(t, []int64{5, 6, 7, 8, 9}, offsets(second))

	assert.False(t, w.ack(second), "acking a later batch must not move the prefix")
	_, _, ok := w.pendingCommit()
	assert.False(t, ok, "nothing is committable while offset 0 is unacked")

	assert.True(t, w.ack(first))
	eo, covered, ok := w.pendingCommit()
	require.True(t, ok)
	assert.Equal(t, kgo.EpochOffset{Epoch: 3, Offset: 10}, eo)
	assert.Equal(t, 10, covered)
	assert.Equal(t, 10, w.used(), "acked but uncommitted records still fill the window")
	assert.Equal(t, 0, w.outstanding)

	w.commitDone(eo.Offset, covered)
	_, _, ok = w.pendingCommit()
	assert.False(t, ok)
	assert.Equal(t, 0, w.used())
}

func TestWindowNeverCommitsPastANackedMessage(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 6), now)
	a := w.next(2, now) // 0,1
	b := w.next(2, now) // 2,3
	c := w.next(2, now) // 4,5

	w.ack(a)
	w.nack(b, now)
	w.ack(c)
	eo, _, ok := w.pendingCommit()
	require.True(t, ok)
	assert.Equal(t, int64(2), eo.Offset, "the commit stops before the nacked offset 2")

	replayed := w.next(10, now.Add(replayBackoffMax))
	require.Equal(t, []int64{2, 3}, offsets(replayed))
	w.ack(replayed)
	eo, _, _ = w.pendingCommit()
	assert.Equal(t, int64(6), eo.Offset)
}

func TestWindowReplaysBeforeNewerMessagesAfterBackoff(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 4), now)
	batch := w.next(2, now)
	wait := w.nack(batch, now)
	assert.Equal(t, replayBackoffBase, wait)

	assert.Nil(t, w.next(10, now), "neither the replay nor newer records go out before the backoff")
	assert.Nil(t, w.next(10, now.Add(wait/2)))

	replayed := w.next(10, now.Add(wait))
	assert.Equal(t, []int64{0, 1}, offsets(replayed), "the replay comes first")
	assert.Equal(t, []int64{2, 3}, offsets(w.next(10, now.Add(wait))))
}

func TestWindowBackoffDoublesAndIsCapped(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 1), now)
	batch := w.next(1, now)
	var waits []time.Duration
	for range 8 {
		waits = append(waits, w.nack(batch, now))
		batch = w.next(1, now.Add(time.Hour))
	}
	assert.Equal(t, []time.Duration{
		100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second,
	}, waits)

	w.ack(batch)
	later := now.Add(2 * time.Hour)
	w.add(records(1, 2), later)
	assert.Equal(t, replayBackoffBase, w.nack(w.next(1, later), later), "another message starts from the base backoff")
}

func TestWindowBoundsMessagesPastTheCommittedOffset(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(10)
	w.add(records(0, 30), now)
	a := w.next(4, now)
	b := w.next(4, now)
	require.Len(t, a, 4)
	require.Len(t, b, 4)
	assert.Nil(t, w.next(4, now), "8 + 4 would exceed the limit of 10")

	w.ack(a)
	w.ack(b)
	assert.Nil(t, w.next(4, now), "acked but uncommitted messages still count")
	assert.True(t, w.wantsCommit(), "a window half full of acked messages asks for a commit")

	eo, covered, _ := w.pendingCommit()
	w.commitDone(eo.Offset, covered)
	assert.Len(t, w.next(4, now), 4)
}

func TestWindowOverlappingCommitsKeepTheCountExact(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 20), now)
	w.ack(w.next(10, now))
	first, firstTotal, _ := w.pendingCommit()
	w.ack(w.next(10, now))
	second, secondTotal, _ := w.pendingCommit()

	w.commitDone(second.Offset, secondTotal) // the later commit finishes first
	w.commitDone(first.Offset, firstTotal)
	assert.Equal(t, int64(20), w.committed)
	assert.Equal(t, 0, w.used())
}

func TestWindowAlwaysLetsOneBatchOutWhenEmpty(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(3)
	w.add(records(0, 10), now)
	assert.Len(t, w.next(100, now), 3, "a batch larger than the limit is cut to the limit")
	assert.Nil(t, w.next(100, now))
}

func TestWindowBackoffCountsFailuresPerMessage(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 4), now)
	head := w.next(2, now)
	tail := w.next(2, now)
	assert.Equal(t, replayBackoffBase, w.nack(head, now))
	assert.Equal(t, replayBackoffBase, w.nack(tail, now),
		"a first failure waits the base backoff, however many other batches of the partition failed")

	replayed := w.next(4, now.Add(replayBackoffBase))
	require.Equal(t, []int64{0, 1, 2, 3}, offsets(replayed))
	w.ack(replayed[2:])
	assert.Equal(t, 2*replayBackoffBase, w.nack(replayed[:2], now.Add(replayBackoffBase)), "a second failure doubles")
}

func TestWindowPartialAckOfABatch(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 4), now)
	batch := w.next(4, now)
	w.ack([]*kgo.Record{batch[0], batch[2], batch[3]})
	w.nack([]*kgo.Record{batch[1]}, now)
	eo, _, _ := w.pendingCommit()
	assert.Equal(t, int64(1), eo.Offset)
	assert.Equal(t, 0, w.outstanding)

	replayed := w.next(4, now.Add(time.Second))
	require.Equal(t, []int64{1}, offsets(replayed))
	w.ack(replayed)
	eo, _, _ = w.pendingCommit()
	assert.Equal(t, int64(4), eo.Offset)
}

func TestWindowDropUndeliveredKeepsInFlightAccounting(t *testing.T) {
	now := time.Now()
	w := newPartitionWindow(100)
	w.add(records(0, 10), now)
	inFlight := w.next(3, now)
	w.nack(w.next(3, now), now)
	w.dropUndelivered()
	assert.Empty(t, w.buffered)
	assert.Empty(t, w.replay)
	assert.Equal(t, 3, w.outstanding, "only the batch still downstream is outstanding")
	w.ack(inFlight)
	eo, _, _ := w.pendingCommit()
	assert.Equal(t, int64(3), eo.Offset)
}
