package result

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Category says whose fault an error is, which decides its Action.
type Category int

// The categories. The zero value is not a category; CategoryOf returns it for
// a nil error.
const (
	System Category = iota + 1
	Business
	Security
	External
)

// String returns SYSTEM, BUSINESS, SECURITY or EXTERNAL, the words used in
// logs and in the qiflow-error-category dead-letter header.
func (c Category) String() string {
	switch c {
	case System:
		return "SYSTEM"
	case Business:
		return "BUSINESS"
	case Security:
		return "SECURITY"
	case External:
		return "EXTERNAL"
	}
	return "Category(" + strconv.Itoa(int(c)) + ")"
}

// ParseCategory is the inverse of Category.String. It ignores case and
// surrounding space.
func ParseCategory(s string) (Category, error) {
	for c := System; c <= External; c++ {
		if strings.EqualFold(strings.TrimSpace(s), c.String()) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("result: unknown error category %q", s)
}

// Action is what a caller does with an error.
type Action int

// The actions. The zero value is not an action; ActionOf returns it for a nil
// error.
const (
	// Retry the message with backoff until it succeeds or the pipeline shuts
	// down. Never dead-letter it.
	Retry Action = iota + 1
	// DeadLetter sends only this message to <topic>.dlq, with its reason.
	DeadLetter
	// Stop halts the pipeline with a clear error; see Halt.
	Stop
)

// String returns "retry", "dead-letter" or "stop".
func (a Action) String() string {
	switch a {
	case Retry:
		return "retry"
	case DeadLetter:
		return "dead-letter"
	case Stop:
		return "stop"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// categoryError is the type of the category sentinels.
type categoryError Category

func (c categoryError) Error() string { return Category(c).String() + " error" }

// Sentinels for errors.Is: errors.Is(err, ErrBusiness) is true when err's
// chain holds an *Error of that category. They do not match raw errors that
// were never classified; use CategoryOf for those.
var (
	ErrSystem   error = categoryError(System)
	ErrBusiness error = categoryError(Business)
	ErrSecurity error = categoryError(Security)
	ErrExternal error = categoryError(External)
)

// Error is a categorised error. Construct it with New, Wrap or Businessf, or
// get one from Classify. Treat a shared *Error as immutable: With and
// AsTransient return copies.
type Error struct {
	// Category decides the Action.
	Category Category
	// Code is stable and machine-readable: a SQLSTATE ("22003"), a Kafka
	// error name ("SASL_AUTHENTICATION_FAILED") or a qiflow code
	// ("invalid_json"). It goes into the qiflow-error-code header.
	Code string
	// Message is for humans.
	Message string
	// Context holds key/values such as column or table names. Error renders
	// them sorted by key.
	Context map[string]string
	// Transient marks a SYSTEM or EXTERNAL error as worth retrying. Without
	// it such an error stops the pipeline. BUSINESS and SECURITY ignore it.
	Transient bool
	// Cause is the underlying error, reachable with errors.Is and errors.As.
	Cause error
}

// New returns a non-transient error without a cause.
func New(cat Category, code, msg string) *Error {
	return &Error{Category: cat, Code: code, Message: msg}
}

// Wrap returns a non-transient error caused by cause. A nil cause is allowed
// and makes Wrap equal to New: Wrap never returns nil, so a typed nil can
// never hide in an error interface.
func Wrap(cat Category, code string, cause error, msg string) *Error {
	return &Error{Category: cat, Code: code, Message: msg, Cause: cause}
}

// Businessf returns a BUSINESS error, the kind that dead-letters one message,
// with a message formatted as by fmt.Errorf. If the format wraps errors with
// %w, they become reachable through the Cause.
func Businessf(code, format string, args ...any) *Error {
	formatted := fmt.Errorf(format, args...)
	e := &Error{Category: Business, Code: code, Message: formatted.Error()}
	switch formatted.(type) {
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		e.Cause = formatted
	}
	return e
}

// Error renders "CATEGORY code: message (key=value, ...): cause". Parts that
// are empty are left out, and so is a message or cause whose text the other
// already contains.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Category.String())
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	msg, cause := e.Message, ""
	if e.Cause != nil {
		cause = e.Cause.Error()
		switch {
		case strings.Contains(msg, cause):
			cause = ""
		case strings.Contains(cause, msg):
			msg = ""
		}
	}
	if msg != "" {
		b.WriteString(": " + msg)
	}
	if len(e.Context) > 0 {
		b.WriteString(" (")
		for i, k := range slices.Sorted(maps.Keys(e.Context)) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=" + quoteIfNeeded(e.Context[k]))
		}
		b.WriteString(")")
	}
	if cause != "" {
		b.WriteString(": " + cause)
	}
	return b.String()
}

// quoteIfNeeded keeps simple values bare and quotes the rest, so that a
// rendered context always splits back into the same key/values.
func quoteIfNeeded(v string) string {
	if v == "" || strings.ContainsAny(v, " ,=()") || strconv.Quote(v) != `"`+v+`"` {
		return strconv.Quote(v)
	}
	return v
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether e matches a category sentinel (ErrBusiness, ...) or
// another *Error with the same Category and Code, so a package-level
// *Error can serve as a sentinel for its code even after With.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case categoryError:
		return e.Category == Category(t)
	case *Error:
		return t != nil && e.Category == t.Category && e.Code == t.Code
	}
	return false
}

// With returns a copy of e with key set to value in its context.
func (e *Error) With(key, value string) *Error {
	c := *e
	c.Context = make(map[string]string, len(e.Context)+1)
	maps.Copy(c.Context, e.Context)
	c.Context[key] = value
	return &c
}

// AsTransient returns a copy of e marked Transient, so that a SYSTEM or
// EXTERNAL error is retried instead of stopping the pipeline.
func (e *Error) AsTransient() *Error {
	c := *e
	c.Transient = true
	return &c
}

// Action maps the category: BUSINESS dead-letters, SECURITY stops, and
// SYSTEM, EXTERNAL (or an unset category) retry when Transient and stop
// otherwise.
func (e *Error) Action() Action {
	switch {
	case e.Category == Business:
		return DeadLetter
	case e.Category == Security:
		return Stop
	case e.Transient:
		return Retry
	}
	return Stop
}

// CategoryOf returns Classify(err).Category, or 0 for a nil error.
func CategoryOf(err error) Category {
	if err == nil {
		return 0
	}
	return Classify(err).Category
}

// ActionOf returns Classify(err).Action(), or 0 for a nil error.
func ActionOf(err error) Action {
	if err == nil {
		return 0
	}
	return Classify(err).Action()
}

// Retryable reports whether err should be retried: ActionOf(err) == Retry.
func Retryable(err error) bool { return ActionOf(err) == Retry }
