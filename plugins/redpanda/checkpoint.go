package redpanda

import (
	"cmp"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Replay backoff: a nacked message is handed downstream again after
// replayBackoffBase, doubling with every further failure of the same
// message, up to replayBackoffMax.
const (
	replayBackoffBase = 100 * time.Millisecond
	replayBackoffMax  = 5 * time.Second
)

// slot is one dispatched record of a partition that is not yet part of the
// acked prefix.
type slot struct {
	offset int64
	epoch  int32
	acked  bool
}

// partitionWindow is the checkpointer of one partition. It tracks every
// record from the last committed offset to the newest one handed downstream,
// and it alone decides what may be committed and what must be replayed:
//
//   - only the contiguous prefix of acked records is ever committable;
//   - a nacked record is replayed, before anything newer of its partition,
//     until it is acked;
//   - at most limit records are past the committed offset at any time, so a
//     crash replays at most limit records of the partition.
//
// partitionWindow is not safe for concurrent use; the reader guards it.
type partitionWindow struct {
	limit int

	// buffered holds fetched records that were not yet handed downstream.
	buffered      []*kgo.Record
	bufferedSince time.Time

	// slots holds the dispatched records that are not yet in the acked
	// prefix, in offset order.
	slots []slot
	// outstanding counts the records downstream right now: dispatched and
	// neither acked nor nacked.
	outstanding int

	// replay holds nacked records in offset order, due again at replayAt.
	// attempts counts the failed deliveries of each record not yet acked.
	replay   []*kgo.Record
	replayAt time.Time
	attempts map[int64]int

	// ackedTotal counts the records that ever joined the acked prefix and
	// committedTotal those of them covered by a commit; committable is the
	// offset after the prefix. Counting totals, rather than subtracting what
	// a commit covered, stays exact when two commits overlap.
	ackedTotal     int
	committedTotal int
	committable    kgo.EpochOffset
	committed      int64

	// highWatermark is the partition's end as the last fetch saw it, and
	// startOffset the first offset this member fetched; -1 until known.
	// They make the consumer-lag gauge (lag.go).
	highWatermark int64
	startOffset   int64

	// detached is set once the partition is revoked or lost: acks that
	// arrive afterwards change nothing.
	detached bool
	paused   bool
	// started is set once the window first hands records on.
	started bool
}

func newPartitionWindow(limit int) *partitionWindow {
	return &partitionWindow{
		limit:         limit,
		attempts:      map[int64]int{},
		committable:   kgo.EpochOffset{Epoch: -1, Offset: -1},
		committed:     -1,
		highWatermark: -1,
		startOffset:   -1,
	}
}

// add buffers fetched records.
func (w *partitionWindow) add(recs []*kgo.Record, now time.Time) {
	if len(recs) == 0 {
		return
	}
	if len(w.buffered) == 0 {
		w.bufferedSince = now
	}
	w.buffered = append(w.buffered, recs...)
}

// used is how many records are past the committed offset.
func (w *partitionWindow) used() int {
	return len(w.slots) + w.ackedUncommitted()
}

// ackedUncommitted is how many acked records wait for a commit.
func (w *partitionWindow) ackedUncommitted() int {
	return w.ackedTotal - w.committedTotal
}

// next hands out the records to send downstream now, at most max of them.
// Replays come first and block newer records until they are dispatched. New
// records wait until the window has room for all of them, unless the window
// is empty. It returns nil when nothing is due.
func (w *partitionWindow) next(max int, now time.Time) []*kgo.Record {
	if len(w.replay) > 0 {
		if now.Before(w.replayAt) {
			return nil
		}
		n := min(max, len(w.replay))
		recs := w.replay[:n:n]
		w.replay = w.replay[n:]
		w.outstanding += n
		return recs
	}
	n := min(max, len(w.buffered), w.limit)
	if n == 0 {
		return nil
	}
	if w.used() > 0 && w.used()+n > w.limit {
		return nil
	}
	recs := w.buffered[:n:n]
	w.buffered = w.buffered[n:]
	if len(w.buffered) == 0 {
		w.buffered = nil
	} else {
		w.bufferedSince = now
	}
	for _, r := range recs {
		w.slots = append(w.slots, slot{offset: r.Offset, epoch: r.LeaderEpoch})
	}
	w.outstanding += n
	return recs
}

// ack marks records as delivered and advances the acked prefix. It reports
// whether the prefix moved.
func (w *partitionWindow) ack(recs []*kgo.Record) bool {
	w.outstanding -= len(recs)
	for _, r := range recs {
		if i, ok := w.find(r.Offset); ok {
			w.slots[i].acked = true
		}
		if len(w.attempts) > 0 {
			delete(w.attempts, r.Offset)
		}
	}
	n := 0
	for n < len(w.slots) && w.slots[n].acked {
		n++
	}
	if n == 0 {
		return false
	}
	last := w.slots[n-1]
	w.committable = kgo.EpochOffset{Epoch: last.epoch, Offset: last.offset + 1}
	w.ackedTotal += n
	w.slots = w.slots[n:]
	return true
}

// nack schedules records for replay, backing off by how often the most
// failed of them has failed. The partition's replays wait for the longest
// backoff among them.
func (w *partitionWindow) nack(recs []*kgo.Record, now time.Time) time.Duration {
	w.outstanding -= len(recs)
	w.replay = append(w.replay, recs...)
	slices.SortFunc(w.replay, func(a, b *kgo.Record) int {
		return cmp.Compare(a.Offset, b.Offset)
	})
	failures := 0
	for _, r := range recs {
		w.attempts[r.Offset]++
		failures = max(failures, w.attempts[r.Offset])
	}
	wait := min(replayBackoffBase<<min(failures-1, 16), replayBackoffMax)
	if due := now.Add(wait); due.After(w.replayAt) {
		w.replayAt = due
	}
	return w.replayAt.Sub(now)
}

// pendingCommit returns the offset to commit and the acked total it
// covers, or false when everything acked is committed already.
func (w *partitionWindow) pendingCommit() (kgo.EpochOffset, int, bool) {
	if w.committable.Offset <= w.committed {
		return kgo.EpochOffset{}, 0, false
	}
	return w.committable, w.ackedTotal, true
}

// commitDone records that offset, covering the acked total ackedTotal, was
// committed.
func (w *partitionWindow) commitDone(offset int64, ackedTotal int) {
	if offset <= w.committed {
		return
	}
	w.committed = offset
	w.committedTotal = max(w.committedTotal, ackedTotal)
}

// wantsCommit reports whether the partition should be committed now rather
// than at the next commit period: half its window is acked and waiting.
func (w *partitionWindow) wantsCommit() bool {
	n := w.ackedUncommitted()
	return n > 0 && n*2 >= w.limit
}

// dropUndelivered forgets what has not been handed downstream, for a revoked
// partition: its next owner reads it again from the committed offset.
func (w *partitionWindow) dropUndelivered() {
	w.buffered = nil
	w.replay = nil
	clear(w.attempts)
}

func (w *partitionWindow) find(offset int64) (int, bool) {
	return slices.BinarySearchFunc(w.slots, offset, func(s slot, o int64) int {
		return cmp.Compare(s.offset, o)
	})
}
