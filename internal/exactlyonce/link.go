// Package exactlyonce links a stream's redpanda input to its timescale
// output in exactly-once mode. The output keeps each partition's next offset
// in a table of the database, written in the transaction that writes the
// partition's rows; the input starts each partition it is assigned from
// that offset rather than from the group's commit. The two meet here, per
// stream, through the stream's shared resources (as result.Scope does).
package exactlyonce

import (
	"context"
	"sync"

	"github.com/qicore/qiflow/internal/result"
)

// Store reads the next offsets the database holds.
type Store interface {
	// NextOffsets returns, for those of the partitions of topic that the
	// database holds an offset of for group, the offset of the next message
	// to write.
	NextOffsets(ctx context.Context, group, topic string, partitions []int32) (map[int32]int64, error)
}

// Link is one stream's meeting point. Its methods are safe for concurrent
// use.
type Link struct {
	mu     sync.Mutex
	group  string
	wanted bool
	store  Store
	ready  chan struct{} // closed once store is set
	// starts holds, per partition, the offset of the first message the
	// input handed on in its current assignment.
	starts map[partition]int64
}

type partition struct {
	topic string
	id    int32
}

type linkKey struct{ stream string }

// LinkOf returns the Link of the stream that owns store, creating it on
// first use.
func LinkOf(store result.GenericStore) *Link {
	l, _ := store.GetOrSetGeneric(linkKey{stream: store.StreamID()}, &Link{ready: make(chan struct{})})
	return l.(*Link)
}

// SetGroup records the input's consumer group, whose offsets the output
// keeps.
func (l *Link) SetGroup(group string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.group = group
}

// Group returns the consumer group the input set, or "".
func (l *Link) Group() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.group
}

// Want records that the stream's output keeps offsets: from then on the
// input starts partitions from the Store. The output calls it when it is
// built, before any partition can be assigned.
func (l *Link) Want() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.wanted = true
}

// Wanted reports whether Want was called.
func (l *Link) Wanted() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wanted
}

// Provide makes s the stream's Store, once the output has connected.
// Later calls change nothing: a reconnected output reads the same table.
func (l *Link) Provide(s Store) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store == nil {
		l.store = s
		close(l.ready)
	}
}

// Started records the offset of the first message the input hands on for a
// partition since it was assigned. A partition the database holds no
// offset of yet starts there: a batch that starts later, overtaking the
// first one (a pipeline's processor threads may reorder batches), is then
// refused rather than taken as the start.
func (l *Link) Started(topic string, id int32, offset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.starts == nil {
		l.starts = map[partition]int64{}
	}
	l.starts[partition{topic, id}] = offset
}

// Start returns what Started recorded for the partition.
func (l *Link) Start(topic string, id int32) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.starts[partition{topic, id}]
	return at, ok
}

// Store waits until the output provides its Store, or ctx ends.
func (l *Link) Store(ctx context.Context) (Store, error) {
	select {
	case <-l.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.store, nil
}
