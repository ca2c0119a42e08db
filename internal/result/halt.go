package result

import "sync/atomic"

// halted holds the first error passed to any Scope's Halt in the process.
// The box lets CompareAndSwap tell "not halted" (nil) from any error value.
var halted atomic.Pointer[haltBox]

type haltBox struct{ err error }

// Scope is where a fatal error applies: the components of one stream share
// a Scope, so a stream that halts (bad credentials, say) stops its own input
// without touching the other streams of the process, and the reload
// supervisor can discard a failed stream together with its halt.
type Scope struct {
	halted atomic.Pointer[haltBox]
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
// consequences. It also records err for the process (see Halted). A nil err
// is ignored. It is safe for concurrent use.
func (s *Scope) Halt(err error) {
	if err == nil {
		return
	}
	s.halted.CompareAndSwap(nil, &haltBox{err: err})
	halted.CompareAndSwap(nil, &haltBox{err: err})
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
