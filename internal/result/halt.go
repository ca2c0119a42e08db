package result

import "sync/atomic"

// halted holds the first error passed to Halt. The box lets
// CompareAndSwap tell "not halted" (nil) from any error value.
var halted atomic.Pointer[haltBox]

type haltBox struct{ err error }

// Halt records err as the reason the pipeline stopped, unless an earlier
// error is already recorded: the first fatal error is the cause, later ones
// are its consequences. A nil err is ignored. It is safe for concurrent use.
// cmd/qiflow reads it with Halted after Benthos has shut down, to exit
// non-zero.
func Halt(err error) {
	if err != nil {
		halted.CompareAndSwap(nil, &haltBox{err: err})
	}
}

// Halted returns the error recorded by Halt, or nil if none was.
func Halted() error {
	if b := halted.Load(); b != nil {
		return b.err
	}
	return nil
}

// ResetHalt forgets the recorded error, for tests.
func ResetHalt() { halted.Store(nil) }
