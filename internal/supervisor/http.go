package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"sort"
	"syscall"
	"time"
)

// ListenError is returned by Run when the HTTP server cannot listen, before
// any stream starts: a taken port is a start error, never a process that
// runs on without its probes, metrics and reload endpoint.
type ListenError struct {
	Address string
	Err     error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("the HTTP server cannot listen on %s: %s", e.Address, e.reason())
}

func (e *ListenError) Unwrap() error { return e.Err }

// reason is the cause without the address: "address already in use
// (another qiflow, or another program, holds it)", say.
func (e *ListenError) reason() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		return "address already in use (another qiflow, or another program, holds it)"
	}
	var op *net.OpError
	if errors.As(e.Err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return e.Err.Error()
}

// streamStatus is one stream's entry in GET /reloads and GET /ready.
type streamStatus struct {
	Stream string `json:"stream"`
	File   string `json:"file,omitempty"`
	// Running is false for a config that does not run: rejected at start,
	// stopped on a fatal error, or left without a stream by a failed
	// rollback.
	Running    bool       `json:"running"`
	Generation int        `json:"generation,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	// Ready: running with every input and output connected.
	Ready bool `json:"ready"`
	// Stale: the file holds a config other than the running one, because
	// it was rejected or rolled back; the file's problem is in Problem.
	Stale   bool   `json:"stale,omitempty"`
	Problem string `json:"problem,omitempty"`
	Status  string `json:"status,omitempty"`
}

// handler serves the supervisor's endpoints; other paths go to the
// endpoints the running streams registered (an http_server input, say).
func (s *Supervisor) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ping", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("pong"))
	})
	mux.HandleFunc("GET /ready", s.serveReady)
	mux.HandleFunc("GET /reloads", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"reloads": s.history.list(), "streams": s.statuses()})
	})
	mux.HandleFunc("POST /reload", func(w http.ResponseWriter, _ *http.Request) {
		records, err := s.Reload("http")
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": err.Error()})
			return
		}
		code := http.StatusOK
		for _, r := range records {
			if r.Result == Rejected || r.Result == RolledBack {
				code = http.StatusUnprocessableEntity
			}
		}
		writeJSON(w, code, map[string]any{"reloads": records})
	})
	if s.opts.Metrics != nil {
		mux.Handle("GET /metrics", s.opts.Metrics)
		mux.Handle("GET /stats", s.opts.Metrics)
	}
	s.mountMCP(mux)
	mux.HandleFunc("/", s.serveStreamEndpoint)
	return mux
}

// serveReady answers 200 when every stream runs with its inputs and outputs
// connected, and 503 otherwise (during a drain, for instance), with each
// stream's status.
func (s *Supervisor) serveReady(w http.ResponseWriter, _ *http.Request) {
	statuses := s.statuses()
	code := http.StatusOK
	if len(statuses) == 0 {
		code = http.StatusServiceUnavailable
	}
	for _, st := range statuses {
		if !st.Ready {
			code = http.StatusServiceUnavailable
		}
	}
	writeJSON(w, code, map[string]any{"streams": statuses})
}

// serveStreamEndpoint hands the request to the stream that registered its
// path.
func (s *Supervisor) serveStreamEndpoint(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	var h http.HandlerFunc
	for _, st := range s.streams {
		if h = st.endpoints.handler(r.URL.Path); h != nil {
			break
		}
	}
	s.mu.RUnlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h(w, r)
}

// statuses lists the running streams, and the configs that do not run
// because of a problem (a file that is not a pipeline config aside).
func (s *Supervisor) statuses() []streamStatus {
	s.mu.RLock()
	all := make([]*running, 0, len(s.streams))
	for _, r := range s.streams {
		all = append(all, r)
	}
	var out []streamStatus
	for id, problem := range s.problems {
		if s.streams[id] == nil && problem != errNotAPipeline.Error() {
			out = append(out, streamStatus{Stream: id, Problem: problem})
		}
	}
	stale := map[string]bool{}
	for _, r := range all {
		stale[r.id] = s.attempted[r.id] != r.text
	}
	problems := maps.Clone(s.problems)
	s.mu.RUnlock()
	for _, r := range all {
		ready, status := r.ready()
		if ready {
			status = ""
		}
		started := r.startedAt.UTC()
		st := streamStatus{Stream: r.id, File: r.file, Running: true, Generation: r.generation, StartedAt: &started, Ready: ready, Status: status}
		if stale[r.id] {
			st.Stale, st.Problem = true, problems[r.id]
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
