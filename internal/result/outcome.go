package result

// Result is the outcome of processing one message or row: a value, or the
// error that stopped it. Batches carry one Result per message so that one bad
// row does not fail the others.
type Result[T any] struct {
	Value T
	Err   error
}

// OK returns a successful Result.
func OK[T any](v T) Result[T] { return Result[T]{Value: v} }

// Fail returns a failed Result. Fail(nil) is an OK Result with the zero value.
func Fail[T any](err error) Result[T] { return Result[T]{Err: err} }

// IsOK reports whether the Result has no error.
func (r Result[T]) IsOK() bool { return r.Err == nil }

// Unwrap returns the value and the error, in Go's usual order.
func (r Result[T]) Unwrap() (T, error) { return r.Value, r.Err }
