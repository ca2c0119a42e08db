package redpanda

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qicore/qiflow/internal/result"
)

// pollLoop fetches records into the partition windows. Rebalances are
// blocked between a poll and AllowRebalance, so records never land in a
// window of a partition that was revoked meanwhile.
func (r *reader) pollLoop(ctx context.Context, cl *kgo.Client) {
	defer r.loops.Done()
	var lastErr string
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() {
			cl.AllowRebalance()
			return
		}
		var toPause map[string][]int32
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			classified := result.Classify(err)
			if classified.Action() == result.Stop {
				r.halt(classified)
				return
			}
			if msg := classified.Error(); msg != lastErr {
				lastErr = msg
				r.log.Warnf("Fetching %s/%d: %v (retrying)", topic, partition, classified)
			}
		})
		now := time.Now()
		r.mu.Lock()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			w, ok := r.windows[topicPartition{p.Topic, p.Partition}]
			if !ok || len(p.Records) == 0 {
				return
			}
			w.add(p.Records, now)
			if !w.paused && len(w.buffered) >= r.bufferLimit() {
				w.paused = true
				if toPause == nil {
					toPause = map[string][]int32{}
				}
				toPause[p.Topic] = append(toPause[p.Topic], p.Partition)
			}
		})
		r.broadcastLocked()
		r.mu.Unlock()
		if toPause != nil {
			cl.PauseFetchPartitions(toPause)
		}
		cl.AllowRebalance()
	}
}

// commitLoop commits acked prefixes every commit period, and at once when a
// partition's window fills with acked messages.
func (r *reader) commitLoop(ctx context.Context, cl *kgo.Client) {
	defer r.loops.Done()
	ticker := time.NewTicker(r.conf.commitPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-r.commitNow:
		}
		if err := r.commit(ctx, cl, nil); err != nil && ctx.Err() == nil {
			r.log.Warnf("Committing offsets of group %q: %v (retrying)", r.conf.group, err)
		}
	}
}

// commit commits the acked prefix of the given partitions, or of every
// partition when only is nil.
func (r *reader) commit(ctx context.Context, cl *kgo.Client, only map[topicPartition]*partitionWindow) error {
	type covered struct {
		w          *partitionWindow
		offset     int64
		ackedTotal int
	}
	offsets := map[string]map[int32]kgo.EpochOffset{}
	var done []covered
	r.mu.Lock()
	windows := only
	if windows == nil {
		windows = r.windows
	}
	for tp, w := range windows {
		eo, n, ok := w.pendingCommit()
		if !ok {
			continue
		}
		if offsets[tp.topic] == nil {
			offsets[tp.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[tp.topic][tp.partition] = eo
		done = append(done, covered{w, eo.Offset, n})
	}
	r.mu.Unlock()
	if len(done) == 0 {
		return nil
	}

	var commitErr error
	cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			commitErr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && commitErr == nil {
					commitErr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr)
				}
			}
		}
	})
	if commitErr != nil {
		return result.Classify(commitErr)
	}
	r.mu.Lock()
	for _, c := range done {
		c.w.commitDone(c.offset, c.ackedTotal)
	}
	r.broadcastLocked()
	r.mu.Unlock()
	return nil
}

func (r *reader) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, partitions := range assigned {
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if old, ok := r.windows[tp]; ok {
				old.detached = true
			}
			r.windows[tp] = newPartitionWindow(r.conf.checkpointLimit)
		}
	}
	r.rebuildOrderLocked()
	r.log.Debugf("Assigned partitions %v", assigned)
}

// onRevoked finishes what can be finished on the revoked partitions within
// revoke_timeout, commits their acked prefix and releases them. What was not
// yet handed downstream is dropped: the next owner reads it again.
func (r *reader) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	revoking := map[topicPartition]*partitionWindow{}
	r.mu.Lock()
	for topic, partitions := range revoked {
		for _, p := range partitions {
			tp := topicPartition{topic, p}
			if w, ok := r.windows[tp]; ok {
				w.dropUndelivered()
				revoking[tp] = w
			}
		}
	}
	deadline := time.Now().Add(r.conf.revokeTimeout)
	for r.outstanding(revoking) > 0 && time.Now().Before(deadline) {
		changed := r.changed
		r.mu.Unlock()
		_ = waitForChange(ctx, changed, deadline)
		r.mu.Lock()
	}
	if n := r.outstanding(revoking); n > 0 {
		r.log.Warnf("Releasing revoked partitions with %d messages still in flight after %v; their next owner delivers them again", n, r.conf.revokeTimeout)
	}
	r.mu.Unlock()

	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.conf.revokeTimeout)
	defer cancel()
	if err := r.commit(commitCtx, cl, revoking); err != nil {
		r.log.Warnf("Committing revoked partitions of group %q: %v", r.conf.group, err)
	}
	r.release(cl, revoking)
}

// onLost releases partitions that another member may already own, without
// committing.
func (r *reader) onLost(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	released := map[topicPartition]*partitionWindow{}
	r.mu.Lock()
	for topic, partitions := range lost {
		for _, p := range partitions {
			if w, ok := r.windows[topicPartition{topic, p}]; ok {
				released[topicPartition{topic, p}] = w
			}
		}
	}
	r.mu.Unlock()
	r.release(cl, released)
}

// release forgets the windows of partitions this member no longer owns, and
// resumes fetching any it had paused, so a later assignment starts clean.
func (r *reader) release(cl *kgo.Client, windows map[topicPartition]*partitionWindow) {
	paused := map[string][]int32{}
	r.mu.Lock()
	for tp, w := range windows {
		w.detached = true
		if w.paused {
			paused[tp.topic] = append(paused[tp.topic], tp.partition)
		}
		if r.windows[tp] == w {
			delete(r.windows, tp)
		}
	}
	r.rebuildOrderLocked()
	r.broadcastLocked()
	r.mu.Unlock()
	if len(paused) > 0 {
		cl.ResumeFetchPartitions(paused)
	}
}

func (r *reader) outstanding(windows map[topicPartition]*partitionWindow) int {
	n := 0
	for _, w := range windows {
		n += w.outstanding
	}
	return n
}

func (r *reader) rebuildOrderLocked() {
	r.order = r.order[:0]
	for tp := range r.windows {
		r.order = append(r.order, tp)
	}
	r.cursor = 0
}

// Close commits everything acked and leaves the group. Benthos calls it after
// every pending ack has resolved.
func (r *reader) Close(ctx context.Context) error {
	if r.client == nil {
		return nil
	}
	r.stopLoops()
	r.loops.Wait()
	if err := r.commit(ctx, r.client, nil); err != nil {
		r.log.Warnf("Committing offsets of group %q on close: %v", r.conf.group, err)
	}
	r.client.CloseAllowingRebalance()
	r.mu.Lock()
	r.client = nil
	r.mu.Unlock()
	return nil
}
