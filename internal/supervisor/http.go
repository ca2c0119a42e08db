package supervisor

import (
	"encoding/json"
	"net/http"
	"sort"
	"time"
)

// streamStatus is one stream's entry in GET /reloads and GET /ready.
type streamStatus struct {
	Stream     string    `json:"stream"`
	File       string    `json:"file"`
	Generation int       `json:"generation"`
	StartedAt  time.Time `json:"started_at"`
	Ready      bool      `json:"ready"`
	Status     string    `json:"status,omitempty"`
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
		records := s.Reload("http")
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

func (s *Supervisor) statuses() []streamStatus {
	s.mu.RLock()
	all := make([]*running, 0, len(s.streams))
	for _, r := range s.streams {
		all = append(all, r)
	}
	s.mu.RUnlock()
	out := make([]streamStatus, 0, len(all))
	for _, r := range all {
		ready, status := r.ready()
		if ready {
			status = ""
		}
		out = append(out, streamStatus{Stream: r.id, File: r.file, Generation: r.generation, StartedAt: r.startedAt.UTC(), Ready: ready, Status: status})
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
