package supervisor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/result"
)

// endpoints is one stream's private HTTP multiplexer. Benthos registers the
// stream's /ready and any component endpoints (an http_server input, say) on
// it; the supervisor's server consults it, so the endpoints follow the
// stream across reloads instead of being bound to a server of their own.
type endpoints struct {
	mu       sync.RWMutex
	handlers map[string]http.HandlerFunc
}

// HandleFunc implements service.HTTPMultiplexer.
func (e *endpoints) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.handlers == nil {
		e.handlers = map[string]http.HandlerFunc{}
	}
	e.handlers[pattern] = h
}

func (e *endpoints) handler(path string) http.HandlerFunc {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.handlers[path]
}

// candidate is a stream that has been linted and built but not yet run.
type candidate struct {
	id, file, text string
	strm           *service.Stream
	endpoints      *endpoints
	scope          *result.Scope
}

// running is a stream the supervisor started.
type running struct {
	*candidate
	generation int
	startedAt  time.Time
	// cancel ends Run when a stop does not finish in time.
	cancel context.CancelFunc
	// done is closed when Run returns; err is what it returned.
	done chan struct{}
	err  error
	// stopping is set before the supervisor stops the stream, so that its
	// end is not mistaken for the stream ending by itself.
	mu       sync.Mutex
	stopping bool
}

// start runs c in the background.
func start(c *candidate, generation int) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{candidate: c, generation: generation, startedAt: time.Now(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer cancel()
		r.err = c.strm.Run(ctx)
		close(r.done)
	}()
	return r
}

// ended reports whether Run has returned.
func (r *running) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// ready asks the stream's own /ready endpoint whether every input and output
// is connected, and returns its answer for the reload report.
func (r *running) ready() (bool, string) {
	h := r.endpoints.handler("/ready")
	if h == nil {
		return false, "starting"
	}
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
	return rec.Code == http.StatusOK, strings.TrimSpace(rec.Body.String())
}

// awaitConnected waits until every input and output of r is connected. It
// fails as soon as the stream halts (bad credentials) or ends, and after
// timeout when it is still connecting.
func (r *running) awaitConnected(timeout time.Duration) error {
	return r.await(timeout, true, func() (bool, string) { return r.ready() })
}

// awaitConstructed waits until r's components are constructed, without
// waiting for connections, and fails when construction failed. A halt, or
// an input that is already done, is left to the stream's end, as it would
// be in `qiflow run`.
func (r *running) awaitConstructed(timeout time.Duration) error {
	return r.await(timeout, false, func() (bool, string) { return r.endpoints.handler("/ready") != nil, "constructing" })
}

// await polls done until it reports true, the stream fails, or timeout
// passes. With strict, a halt or an end without error fails too.
func (r *running) await(timeout time.Duration, strict bool, done func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := r.scope.Halted(); err != nil && strict {
			return fmt.Errorf("stopped at start: %w", err)
		}
		if r.ended() {
			if r.err != nil {
				return fmt.Errorf("failed to start: %w", r.err)
			}
			if !strict {
				return nil
			}
			return errors.New("ended as soon as it started")
		}
		ok, status := done()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s: %s", timeout, status)
		}
		<-tick.C
	}
}

// abandonAfter is how long a stop that timed out waits for Run to return
// once its context is cancelled, before the stream is given up on.
const abandonAfter = 5 * time.Second

// stop drains r: its input stops, in-flight messages are written and acked,
// offsets are committed, then every component closes. After timeout the stop
// turns ungraceful; acked offsets stay committed, so nothing is lost. A
// component that never closes is abandoned rather than blocking every
// later reload and the shutdown.
func (r *running) stop(timeout time.Duration) error {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	if r.ended() {
		return nil
	}
	// Draining first makes the stream's retry waits give up, so the stop
	// takes the time of the writes in flight, not of a dependency's outage.
	r.scope.Drain()
	err := r.strm.StopWithin(timeout)
	if err != nil {
		r.cancel()
	}
	select {
	case <-r.done:
	case <-time.After(abandonAfter):
		err = errors.Join(err, errors.New("a component did not close; abandoned"))
	}
	return err
}

// stoppedByUs reports whether the supervisor asked r to stop.
func (r *running) stoppedByUs() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}
