package redpanda

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// startOffsetsRetry is the wait between attempts to read the database's
// offsets while it does not answer.
const startOffsetsRetry = time.Second

// adjustOffsets starts each assigned partition where the database says, when
// the stream's timescale output keeps offsets (exactly-once mode): the
// offset after the last message whose row is in the table, committed in the
// same transaction. The group's commit, which follows the database's, is
// used only for partitions the database holds no offset of.
//
// franz-go calls it after the group's offsets are fetched and before any
// fetch of the new assignment, in the group session's goroutine while
// heartbeats go on; ctx ends when the session does. A database that does
// not answer is retried until it does or the session ends: consuming from
// the group's offset instead could write a message twice. Should the first
// message then come from below the database's offset (the topic was
// recreated or truncated, and franz-go reset the position), ReadBatch
// stops the stream: those messages would be taken for written.
func (r *reader) adjustOffsets(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	if !r.link.Wanted() {
		return offsets, nil
	}
	store, err := r.link.Store(ctx)
	if err != nil {
		return nil, err
	}
	for topic, partitions := range offsets {
		ids := make([]int32, 0, len(partitions))
		for p := range partitions {
			ids = append(ids, p)
		}
		slices.Sort(ids)
		var next map[int32]int64
		for attempt := 1; ; attempt++ {
			if next, err = store.NextOffsets(ctx, r.conf.group, topic, ids); err == nil {
				break
			}
			r.log.Warnf("Reading the offsets of %s from the database for group %q (attempt %d): %v", topic, r.conf.group, attempt, err)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(startOffsetsRetry):
			}
		}
		r.mu.Lock()
		if r.dbStarts == nil {
			r.dbStarts = map[topicPartition]int64{}
		}
		for _, p := range ids {
			delete(r.dbStarts, topicPartition{topic, p})
			if at, ok := next[p]; ok {
				tp := topicPartition{topic, p}
				partitions[p] = kgo.NewOffset().At(at).WithEpoch(-1)
				r.dbStarts[tp] = at
				// The group's commit follows the database's at once, so
				// that lag monitoring shows no lag the database has not:
				// with nothing new to consume, no ack would ever move it.
				if w, ok := r.windows[tp]; ok && w.committable.Offset < at {
					w.committable = kgo.EpochOffset{Epoch: -1, Offset: at}
				}
				r.log.Infof("Starting %s/%d at offset %d, the database's", topic, p, at)
			}
		}
		r.requestCommit()
		r.mu.Unlock()
	}
	return offsets, nil
}
