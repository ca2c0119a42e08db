package result

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// halted holds the first error passed to any Scope's Halt in the process.
// The box lets CompareAndSwap tell "not halted" (nil) from any error value.
var halted atomic.Pointer[haltBox]

type haltBox struct{ err error }

// Scope is where a fatal error applies: the components of one stream share
// a Scope, so a stream that halts (bad credentials, say) stops its own input
// without touching the other streams of the process, and the reload
// supervisor can discard a failed stream together with its halt.
//
// A Scope also tells its components when the stream drains (a stop, a
// reload, a leave): retry waits select on Draining, so a stop with a
// dependency down does not wait out the retries. What was not written is
// left unacknowledged, hence uncommitted, and replayed by the next owner.
type Scope struct {
	halted atomic.Pointer[haltBox]

	drainOnce sync.Once
	drainMu   sync.Mutex // guards draining's creation
	draining  chan struct{}
}

// GenericStore is the part of *service.Resources that ScopeOf needs: values
// shared by the components of a stream, and the stream's id. Benthos's own
// streams mode shares one store among all its streams and tells them apart
// by id; a stream built alone has a store of its own.
type GenericStore interface {
	GetOrSetGeneric(key, value any) (actual any, loaded bool)
	StreamID() string
}

type scopeKey struct{ stream string }

// ScopeOf returns the Scope shared by the components of the stream that owns
// store, creating it on first use.
func ScopeOf(store GenericStore) *Scope {
	s, _ := store.GetOrSetGeneric(scopeKey{stream: store.StreamID()}, &Scope{})
	return s.(*Scope)
}

// Halt records err as the reason the stream stopped, unless an earlier error
// is already recorded: the first fatal error is the cause, later ones are its
// consequences. It also records err for the process (see Halted), and drains
// the stream (see Drain): a halted stream stops waiting for retries. A nil err
// is ignored. It is safe for concurrent use.
func (s *Scope) Halt(err error) {
	if err == nil {
		return
	}
	s.halted.CompareAndSwap(nil, &haltBox{err: err})
	halted.CompareAndSwap(nil, &haltBox{err: err})
	s.Drain()
}

// Drain records that the stream is stopping: Draining's channel closes.
// Any component may call it (the input when its soft stop begins, the
// supervisor before it stops a stream); later calls do nothing.
func (s *Scope) Drain() {
	s.drainOnce.Do(func() { close(s.drainChan()) })
}

// Draining returns a channel that is closed once the stream drains. A retry
// wait selects on it, and gives up instead of waiting when it closes.
func (s *Scope) Draining() <-chan struct{} { return s.drainChan() }

// IsDraining reports whether Drain was called.
func (s *Scope) IsDraining() bool {
	select {
	case <-s.drainChan():
		return true
	default:
		return false
	}
}

// DrainGrace is how long a write already in flight when its stream drains
// may still take before it is cut and its messages are left to be replayed.
// A healthy database or broker answers in milliseconds; an unreachable one
// never does.
const DrainGrace = 500 * time.Millisecond

// Sleep waits d, unless ctx ends or the stream drains first. It returns nil
// after d, context.Cause(ctx) when ctx ended, and drained when the stream
// drained: every retry wait of a stream's components goes through it.
func (s *Scope) Sleep(ctx context.Context, d time.Duration, drained error) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.Draining():
		return drained
	}
}

func (s *Scope) drainChan() chan struct{} {
	s.drainMu.Lock()
	defer s.drainMu.Unlock()
	if s.draining == nil {
		s.draining = make(chan struct{})
	}
	return s.draining
}

// Halted returns the error recorded by the stream's Halt, or nil.
func (s *Scope) Halted() error {
	if b := s.halted.Load(); b != nil {
		return b.err
	}
	return nil
}

// Halted returns the first error any stream of the process halted on, or nil.
// `qiflow run` reads it after Benthos has shut down, to exit non-zero.
func Halted() error {
	if b := halted.Load(); b != nil {
		return b.err
	}
	return nil
}

// ResetHalt forgets the process-wide error, for tests.
func ResetHalt() { halted.Store(nil) }
