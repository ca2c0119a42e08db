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

// The group session: the poll and commit loops, and the rebalance
// callbacks that franz-go runs.
//
// Goroutines and what they own:
//   - pollLoop is the only caller of PollRecords and AllowRebalance. With
//     BlockRebalanceOnPoll, no rebalance callback runs between a poll and
//     AllowRebalance, so fetched records only land in windows of partitions
//     that are still assigned.
//   - commitLoop commits on its ticker and on requestCommit; onRevoked and
//     Close commit too. commit reads the windows under mu, commits without
//     it, and records the result under mu again, so a commit never blocks
//     ReadBatch or an ack.
//   - onAssigned, onRevoked and onLost run in franz-go's group goroutine,
//     one at a time, never during a poll (see above).
//   - ReadBatch and the ack functions run in Benthos's goroutines.
//   - adjustOffsets (start_offsets.go) runs in franz-go's group session
//     goroutine, after onAssigned and before the assignment is fetched; it
//     reads the database without mu and records dbStarts under it.
//
// Lock order: r.mu is taken before franz-go's pause lock, never after.
// PauseFetchPartitions and ResumeFetchPartitions take only franz-go's leaf
// locks (the paused set, the sources), and franz-go holds none of those
// while it runs our callbacks, so calling them under r.mu cannot deadlock.
// They are called only under r.mu, by pauseLocked and resumeLocked, together
// with the window's paused flag: deciding and applying a pause or a resume
// is one step, so franz-go's pause state always equals the windows' flags.
// (Before, a resume that landed between a pause's decision and its call
// left a partition paused for good.)
//
// No callback waits for an ack that cannot come: Benthos resolves every
// ack it will ever resolve before it calls Close (a batch handed at a soft
// stop is dropped unacked), so once Close sets leaving, onRevoked releases
// at once and what is outstanding is delivered again by the next owner.

// testHookPauseDecided, when set by a test, runs after pollLoop decided to
// pause partitions and before it applies the pause. It runs under r.mu.
var testHookPauseDecided func()

// pollLoop fetches records into the partition windows and pauses a
// partition whose buffer is full; ReadBatch resumes it once it drained.
func (r *reader) pollLoop(ctx context.Context, cl *kgo.Client) {
	defer r.loops.Done()
	var lastErr string
	for ctx.Err() == nil {
		fetches := cl.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() {
			cl.AllowRebalance()
			return
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			classified, stops := classifyPollError(err)
			if stops {
				r.halt(classified)
				return
			}
			if msg := classified.Error(); msg != lastErr {
				lastErr = msg
				if classified.Code == codeGroupSessionEnded {
					r.log.Warnf("Group %q: %v", r.conf.group, classified)
				} else {
					r.log.Warnf("Fetching %s/%d: %v (retrying)", topic, partition, classified)
				}
			}
		})
		now := time.Now()
		r.mu.Lock()
		var toPause map[string][]int32
		var pausing []*partitionWindow
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			tp := topicPartition{p.Topic, p.Partition}
			w, ok := r.windows[tp]
			if !ok {
				return
			}
			w.observe(p)
			r.lag.set(tp, w)
			if len(p.Records) == 0 {
				return
			}
			w.add(p.Records, now)
			if !w.paused && len(w.buffered) >= r.bufferLimit() {
				if toPause == nil {
					toPause = map[string][]int32{}
				}
				toPause[p.Topic] = append(toPause[p.Topic], p.Partition)
				pausing = append(pausing, w)
			}
		})
		if toPause != nil {
			if testHookPauseDecided != nil {
				testHookPauseDecided()
			}
			r.pauseLocked(toPause, pausing...)
		}
		r.broadcastLocked()
		r.mu.Unlock()
		cl.AllowRebalance()
	}
}

// pauseLocked pauses fetching the partitions and flags their windows, in one
// step under r.mu.
func (r *reader) pauseLocked(partitions map[string][]int32, windows ...*partitionWindow) {
	for _, w := range windows {
		w.paused = true
	}
	r.client.PauseFetchPartitions(partitions)
}

// resumeLocked resumes fetching the partitions and clears their windows'
// flags, in one step under r.mu.
func (r *reader) resumeLocked(partitions map[string][]int32, windows ...*partitionWindow) {
	for _, w := range windows {
		w.paused = false
	}
	r.client.ResumeFetchPartitions(partitions)
}

// codeGroupSessionEnded is the code of a poll error that ended the group
// session: franz-go rejoins by itself.
const codeGroupSessionEnded = "group_session_ended"

// groupConfigErrors are the group errors that rejoining cannot fix: the
// pipeline's settings do not fit the cluster's.
var groupConfigErrors = []*kerr.Error{
	kerr.InvalidSessionTimeout,
	kerr.InvalidGroupID,
	kerr.InconsistentGroupProtocol,
}

// classifyPollError classifies an error a poll returned, by where it came
// from as well as by its code, and says whether it stops the input. Only
// SECURITY and configuration errors stop it: franz-go keeps fetching and
// rejoining by itself through everything else. kerr's Retriable flag means
// "the same request may succeed if resent", not "the situation is
// transient": UNKNOWN_MEMBER_ID and ILLEGAL_GENERATION are not retriable
// requests, yet a member whose session expired (a GC or VM pause longer
// than session_timeout) only has to join again.
func classifyPollError(err error) (*result.Error, bool) {
	classified := result.Classify(err)
	if classified.Category == result.Security {
		return classified, true
	}
	if session, ok := errors.AsType[*kgo.ErrGroupSession](err); ok {
		for _, cfg := range groupConfigErrors {
			if errors.Is(session.Err, cfg) {
				return result.Wrap(result.System, "group_config", err,
					"the group refused this member's settings"), true
			}
		}
		return result.Wrap(result.External, codeGroupSessionEnded, err,
			"the group session ended; rejoining, and what was not committed is delivered again").AsTransient(), false
	}
	return classified, false
}

// commitRetryWait is the longest wait after a refused commit before the next
// attempt.
const commitRetryWait = time.Second

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
			wait := min(r.conf.commitPeriod, commitRetryWait)
			r.log.Warnf("Committing offsets of group %q: %v (retrying in %v)", r.conf.group, err, wait)
			// A refused commit is retried after a wait, not at every
			// request: a window without room asks on every wake.
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			select {
			case <-r.commitNow:
			default:
			}
		}
	}
}

// commit commits the acked prefix of the given partitions, or of every
// partition when only is nil.
func (r *reader) commit(ctx context.Context, cl *kgo.Client, only map[topicPartition]*partitionWindow) error {
	type covered struct {
		tp         topicPartition
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
		done = append(done, covered{tp, w, eo.Offset, n})
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
		if !c.w.detached {
			r.lag.set(c.tp, c.w)
		}
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
// yet handed downstream is dropped: the next owner reads it again. When the
// input is leaving (Close), nothing outstanding will ever be acked, so it
// does not wait at all.
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
	for !r.leaving && r.outstanding(revoking) > 0 && time.Now().Before(deadline) {
		changed := r.changed
		r.mu.Unlock()
		_ = waitForChange(ctx, changed, deadline)
		r.mu.Lock()
	}
	if n := r.outstanding(revoking); n > 0 {
		if r.leaving {
			r.log.Debugf("Leaving the group with %d messages that were never handed downstream; their next owner delivers them", n)
		} else {
			r.log.Warnf("Releasing revoked partitions with %d messages still in flight after %v; their next owner delivers them again", n, r.conf.revokeTimeout)
		}
	}
	r.mu.Unlock()

	commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.conf.revokeTimeout)
	defer cancel()
	if err := r.commit(commitCtx, cl, revoking); err != nil {
		r.log.Warnf("Committing revoked partitions of group %q: %v", r.conf.group, err)
	}
	r.release(revoking)
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
	r.release(released)
}

// release forgets the windows of partitions this member no longer owns, and
// resumes fetching any it had paused, so a later assignment starts clean.
func (r *reader) release(windows map[topicPartition]*partitionWindow) {
	paused := map[string][]int32{}
	var pausedWindows []*partitionWindow
	r.mu.Lock()
	defer r.mu.Unlock()
	for tp, w := range windows {
		w.detached = true
		if r.windows[tp] == w {
			r.lag.release(tp)
		}
		if w.paused {
			paused[tp.topic] = append(paused[tp.topic], tp.partition)
			pausedWindows = append(pausedWindows, w)
		}
		if r.windows[tp] == w {
			delete(r.windows, tp)
		}
	}
	if len(paused) > 0 {
		r.resumeLocked(paused, pausedWindows...)
	}
	r.rebuildOrderLocked()
	r.broadcastLocked()
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

// closeCommitTimeout bounds the final commit of Close (and revoke_timeout,
// when shorter): a stop with the broker unreachable must not hang on it.
// What it fails to commit is delivered again, idempotently.
const closeCommitTimeout = 2 * time.Second

// Close commits everything acked and leaves the group. Benthos calls it after
// every ack it will resolve has resolved, so Close waits for none: what is
// still outstanding was dropped by Benthos unacked, and the partition's
// next owner delivers it again. The commit is bounded (closeCommitTimeout),
// so a stop with the broker down does not hang.
func (r *reader) Close(ctx context.Context) error {
	if r.client == nil {
		return nil
	}
	r.mu.Lock()
	r.leaving = true
	r.broadcastLocked()
	r.mu.Unlock()
	r.stopLoops()
	r.loops.Wait()
	commitCtx, cancel := context.WithTimeout(ctx, min(r.conf.revokeTimeout, closeCommitTimeout))
	defer cancel()
	if err := r.commit(commitCtx, r.client, nil); err != nil {
		r.log.Warnf("Committing offsets of group %q on close: %v", r.conf.group, err)
	}
	r.client.CloseAllowingRebalance()
	r.mu.Lock()
	r.client = nil
	r.mu.Unlock()
	return nil
}
