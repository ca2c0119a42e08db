// Package supervisor runs pipelines and swaps them when their config changes,
// without losing a message and without leaving no pipeline behind: a new
// config is linted and built before the running stream is touched, the
// running stream is drained (its in-flight messages written and their
// offsets committed) before the new one starts, and a new stream that fails
// to start is replaced by the old config again. It backs
// `qiflow run --watch` and `qiflow streams --watch`.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a Supervisor.
type Options struct {
	// Targets are config files, or directories whose *.yaml and *.yml files
	// are each one stream.
	Targets []string
	// Streams selects streams mode: any number of streams, one per file,
	// named by the file name without extension. Otherwise Targets is one
	// file and its stream is the process's only one.
	Streams bool
	// Watch reloads on file changes; without it only POST /reload does.
	Watch bool
	// Sets are --set path=value overrides applied to every config.
	Sets []string
	// HTTPAddress is where /ping, /ready, /metrics, /reload and /reloads
	// are served; empty disables the server.
	HTTPAddress string
	// StartTimeout bounds how long a reloaded stream may take to connect
	// its inputs and outputs before the old config is brought back.
	StartTimeout time.Duration
	// DrainTimeout bounds the graceful stop of a stream.
	DrainTimeout time.Duration
	// Debounce is how long the file system must be quiet before a reload,
	// so an editor's several writes make one reload.
	Debounce time.Duration
	// Poll re-reads the configs at this interval as well, for file systems
	// that deliver no change events (some container bind mounts); 0 is off.
	Poll time.Duration
	// Logger receives the supervisor's and every stream's logs.
	Logger *slog.Logger
	// Registerer receives qiflow_reloads_total; nil skips it.
	Registerer prometheus.Registerer
	// Metrics serves GET /metrics; nil answers 404.
	Metrics http.Handler
	// EnvLookup resolves ${VAR} in configs; nil uses the environment.
	EnvLookup func(string) (string, bool)
	// MCP, when set, is served at /mcp to requests with the bearer token
	// MCPToken (see mcp.go).
	MCP      http.Handler
	MCPToken string
}

func (o *Options) defaults() {
	if o.StartTimeout <= 0 {
		o.StartTimeout = 15 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	if o.Debounce <= 0 {
		o.Debounce = 200 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// HaltError is returned by Run when the stream stopped itself on a fatal
// error (bad credentials, for instance) outside a reload.
type HaltError struct{ Err error }

func (e *HaltError) Error() string { return "pipeline stopped: " + e.Err.Error() }
func (e *HaltError) Unwrap() error { return e.Err }

// errClosing refuses a reload that arrives once shutdown has begun.
var errClosing = errors.New("shutting down")

// Supervisor owns the process's streams and reloads them.
type Supervisor struct {
	opts    Options
	build   builder
	log     *slog.Logger
	history *history

	// reloads serializes every change to streams and the maps below, and
	// guards closing.
	reloads sync.Mutex
	// closing is set by stopAll: no stream starts after it.
	closing bool

	// mu guards the fields below for readers that do not hold reloads
	// (the HTTP handlers); writers hold both.
	mu         sync.RWMutex
	streams    map[string]*running
	generation int
	// attempted holds, per stream, the config text last tried, so that a
	// file system event that leaves a rejected config as it was is not
	// reported again.
	attempted map[string]string
	// problems holds, per stream, why its file's config does not run; a
	// repeat of the same problem on a file system event is not reported
	// again.
	problems map[string]string

	// ended receives a stream that stopped without being asked to.
	ended chan *running
	// restoreBackoff is the first pause between tries to restore a config.
	restoreBackoff time.Duration
}

// New checks opts and prepares a Supervisor; Run starts it.
func New(opts Options) (*Supervisor, error) {
	opts.defaults()
	if len(opts.Targets) == 0 {
		return nil, errors.New("no config file given")
	}
	if err := opts.checkMCP(); err != nil {
		return nil, err
	}
	if !opts.Streams {
		if len(opts.Targets) != 1 {
			return nil, fmt.Errorf("run takes one config file, got %d (use streams for several)", len(opts.Targets))
		}
		if st, err := os.Stat(opts.Targets[0]); err == nil && st.IsDir() {
			return nil, fmt.Errorf("%s is a directory: run takes one config file (use streams for a directory)", opts.Targets[0])
		}
	}
	for i, t := range opts.Targets {
		abs, err := filepath.Abs(t)
		if err != nil {
			return nil, err
		}
		opts.Targets[i] = abs
	}
	overrides, err := parseOverrides(opts.Sets)
	if err != nil {
		return nil, err
	}
	h, err := newHistory(opts.Registerer)
	if err != nil {
		return nil, err
	}
	return &Supervisor{
		opts:      opts,
		build:     builder{log: opts.Logger, overrides: overrides, labelByID: opts.Streams, envLookup: opts.EnvLookup},
		log:       opts.Logger,
		history:   h,
		attempted: map[string]string{},
		problems:  map[string]string{},
		streams:   map[string]*running{},
		ended:     make(chan *running, 16),

		restoreBackoff: time.Second,
	}, nil
}

// Run starts the streams, then serves and reloads until ctx ends, when it
// drains every stream. In run mode it also returns when the stream ends by
// itself: nil when its input finished, a *HaltError when it stopped on a
// fatal error, the error when it failed. A run-mode config that cannot start
// is an error at once.
func (s *Supervisor) Run(ctx context.Context) error {
	if s.opts.HTTPAddress != "" {
		ln, err := net.Listen("tcp", s.opts.HTTPAddress)
		if err != nil {
			return &ListenError{Address: s.opts.HTTPAddress, Err: err}
		}
		srv := &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		s.log.Info("Serving /ping, /ready, /metrics, /reload and /reloads", "address", ln.Addr().String())
		defer func() {
			shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutCtx)
		}()
	}

	records, _ := s.Reload("start")
	if !s.opts.Streams && !s.has(streamID(s.opts.Targets[0])) {
		return fmt.Errorf("%s: %s", records[0].File, records[0].Reason)
	}

	var changes <-chan struct{}
	if s.opts.Watch {
		w, err := newWatcher(s.opts.Targets, s.opts.Debounce, s.opts.Poll, s.log)
		if err != nil {
			s.stopAll()
			return err
		}
		defer w.close()
		changes = w.changes
		s.log.Info("Watching for config changes", "targets", strings.Join(s.opts.Targets, ","))
	}

	for {
		select {
		case <-ctx.Done():
			s.stopAll()
			return nil
		case <-changes:
			_, _ = s.Reload("watch")
		case r := <-s.ended:
			if err := s.onEnded(r); err != nil || (!s.opts.Streams && !s.has(r.id)) {
				s.stopAll()
				return err
			}
		}
	}
}

// onEnded forgets a stream that stopped by itself. A halt (a fatal error)
// or a failure is returned in run mode and logged in streams mode.
func (s *Supervisor) onEnded(r *running) error {
	s.reloads.Lock()
	defer s.reloads.Unlock()
	s.mu.Lock()
	current := s.streams[r.id] == r
	if current {
		delete(s.streams, r.id)
	}
	s.mu.Unlock()
	if !current { // replaced by a reload meanwhile
		return nil
	}
	var failure error
	switch halted := r.scope.Halted(); {
	case halted != nil:
		failure = &HaltError{Err: halted}
	case r.err != nil:
		failure = fmt.Errorf("stream %s: %w", r.id, r.err)
	default:
		s.log.Info("Stream finished its input", "stream", r.id)
		return nil
	}
	if !s.opts.Streams {
		return failure
	}
	s.setProblem(r.id, failure.Error())
	s.log.Error("Stream stopped; it starts again when its config changes or on POST /reload", "stream", r.id, "error", failure.Error())
	return nil
}

// setProblem records why id's config does not run; "" clears it.
func (s *Supervisor) setProblem(id, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason == "" {
		delete(s.problems, id)
	} else {
		s.problems[id] = reason
	}
}

func (s *Supervisor) has(id string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.streams[id] != nil
}

// Reload compares every target config with what runs and applies the
// differences, one stream at a time. trigger ("start", "watch", "http")
// is recorded with each outcome. It returns the records of this call, or
// errClosing once shutdown has begun.
func (s *Supervisor) Reload(trigger string) ([]Record, error) {
	s.reloads.Lock()
	defer s.reloads.Unlock()
	if s.closing {
		return nil, errClosing
	}
	desired, problems := s.desired()
	s.forgetVanished(desired, problems)
	var out []Record
	for _, p := range problems {
		if trigger == "watch" && s.problems[p.id] == p.reason {
			continue
		}
		s.setProblem(p.id, p.reason)
		out = append(out, s.history.add(s.log, Record{Trigger: trigger, Stream: p.id, File: p.file, Result: Rejected, Reason: p.reason}))
	}
	ids := make([]string, 0, len(desired))
	for id := range desired {
		ids = append(ids, id)
	}
	s.mu.RLock()
	for id := range s.streams {
		if _, ok := desired[id]; !ok {
			ids = append(ids, id)
		}
	}
	s.mu.RUnlock()
	sort.Strings(ids)
	for _, id := range ids {
		if rec, changed := s.reloadOne(trigger, id, desired[id]); changed {
			out = append(out, rec)
		}
	}
	return out, nil
}

// forgetVanished drops what is remembered about configs whose files are gone
// and that run no stream.
func (s *Supervisor) forgetVanished(desired map[string]string, problems []problem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := func(id string) bool {
		_, wanted := desired[id]
		return wanted || s.streams[id] != nil || slices.ContainsFunc(problems, func(p problem) bool { return p.id == id })
	}
	maps.DeleteFunc(s.problems, func(id, _ string) bool { return !keep(id) })
	maps.DeleteFunc(s.attempted, func(id, _ string) bool { return !keep(id) })
}

// problem is a target that cannot be read.
type problem struct{ id, file, reason string }

// desired lists the stream ids the targets define, with their files.
func (s *Supervisor) desired() (map[string]string, []problem) {
	want := map[string]string{}
	var problems []problem
	addFile := func(file string) {
		id := streamID(file)
		if prev, ok := want[id]; ok && prev != file {
			problems = append(problems, problem{id, file, fmt.Sprintf("stream %q is already defined by %s", id, prev)})
			return
		}
		want[id] = file
	}
	for _, t := range s.opts.Targets {
		st, err := os.Stat(t)
		switch {
		case err != nil && !s.opts.Streams:
			addFile(t) // reloadOne reports it, and keeps the stream running
		case err != nil:
			// A named file that vanished keeps its stream: an editor may
			// be between deleting and writing it.
			if id := streamID(t); s.has(id) {
				want[id] = t
			} else {
				problems = append(problems, problem{id, t, err.Error()})
			}
		case st.IsDir():
			entries, err := os.ReadDir(t)
			if err != nil {
				problems = append(problems, problem{"", t, err.Error()})
				continue
			}
			for _, e := range entries {
				if !e.IsDir() && isConfigFile(e.Name()) {
					addFile(filepath.Join(t, e.Name()))
				}
			}
		default:
			addFile(t)
		}
	}
	return want, problems
}

// reloadOne brings one stream in line with its file. changed is false when
// there was nothing to do.
func (s *Supervisor) reloadOne(trigger, id, file string) (rec Record, changed bool) {
	s.mu.RLock()
	old := s.streams[id]
	s.mu.RUnlock()
	rec = Record{Trigger: trigger, Stream: id, File: file}
	if old != nil {
		rec.Generation = old.generation
		if rec.File == "" {
			rec.File = old.file
		}
	}
	add := func(rec Record) (Record, bool) {
		problem := ""
		if rec.Result == Rejected || rec.Result == RolledBack {
			problem = rec.Reason
		}
		s.setProblem(id, problem)
		return s.history.add(s.log, rec), true
	}

	if file == "" { // its file left a watched directory
		s.drain(old, &rec)
		s.mu.Lock()
		delete(s.streams, id)
		delete(s.attempted, id)
		s.mu.Unlock()
		rec.Result, rec.Generation = Removed, 0
		return add(rec)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		if trigger == "watch" && (old != nil || s.problems[id] == err.Error()) {
			return rec, false // an editor between delete and write, or known
		}
		rec.Result, rec.Reason = Rejected, err.Error()
		return add(rec)
	}
	text := string(raw)
	if trigger == "watch" {
		if tried, ok := s.attempted[id]; ok && tried == text {
			return rec, false
		}
	}
	s.mu.Lock()
	s.attempted[id] = text
	s.mu.Unlock()
	if old != nil && old.text == text {
		if trigger == "watch" {
			return rec, false
		}
		rec.Result = Unchanged
		return add(rec)
	}

	next, err := s.build.build(id, file, text)
	if err != nil {
		rec.Result, rec.Reason = Rejected, err.Error()
		return add(rec)
	}

	began := time.Now()
	s.drain(old, &rec)
	started, err := s.startAndWait(next, old != nil)
	if err == nil {
		rec.Result, rec.Generation = Applied, started.generation
		rec.GapSeconds = sinceIf(old != nil, began)
		return add(rec)
	}
	rec.Reason = err.Error()
	if old == nil {
		rec.Result = Rejected
		return add(rec)
	}
	rec.Result, rec.Generation = RolledBack, 0
	if restored, err := s.restore(old); err == nil {
		rec.Generation = restored.generation
		// The gap lasts until the restored stream is connected again,
		// as rows see it; a restore that is slow to connect is the
		// world's doing and is not waited for beyond StartTimeout.
		if err := restored.awaitConnected(s.opts.StartTimeout); err != nil {
			s.log.Warn("The restored stream is not ready yet", "stream", id, "error", err.Error())
		}
	} else {
		s.mu.Lock()
		if s.streams[id] == old {
			delete(s.streams, id)
		}
		s.mu.Unlock()
		rec.Reason += "; the previous config did not restart either (" + err.Error() + "): no stream runs until the file changes or POST /reload"
	}
	rec.GapSeconds = time.Since(began).Seconds()
	return add(rec)
}

// drain stops old, if any, and records how long it took.
func (s *Supervisor) drain(old *running, rec *Record) {
	if old == nil {
		return
	}
	began := time.Now()
	if err := old.stop(s.opts.DrainTimeout); err != nil {
		s.log.Warn("Stream did not drain in time; it was closed", "stream", old.id, "timeout", s.opts.DrainTimeout.String(), "error", err.Error())
	}
	rec.DrainSeconds = time.Since(began).Seconds()
}

// abortTimeout bounds the stop of a stream that failed to start: it never
// became ready, so it wrote and committed little or nothing, and whatever it
// holds uncommitted is read again by the next stream. It is short because
// the failed stream's consumer holds partitions until it stops: every
// moment of it is a moment of the reload's gap.
const abortTimeout = time.Second

// startAndWait runs c and, on a reload, waits until all its inputs and
// outputs are connected; otherwise only until its components are
// constructed, as `qiflow run` would. A stream that halts, ends or does not
// get there in time is stopped again and its error returned.
func (s *Supervisor) startAndWait(c *candidate, reload bool) (*running, error) {
	s.mu.Lock()
	s.generation++
	r := start(c, s.generation)
	s.mu.Unlock()
	var err error
	if reload {
		err = r.awaitConnected(s.opts.StartTimeout)
	} else {
		err = r.awaitConstructed(s.opts.StartTimeout)
	}
	if err != nil {
		if stopErr := r.stop(min(abortTimeout, s.opts.DrainTimeout)); stopErr != nil {
			s.log.Warn("Failed stream did not stop cleanly", "stream", c.id, "error", stopErr.Error())
		}
		return nil, err
	}
	s.adopt(r)
	return r, nil
}

// restoreAttempts bounds the tries to start the previous config again
// after a failed reload, so that the reload lock is released and a fixed
// file is applied instead of waiting behind an endless retry.
const restoreAttempts = 4

// restore starts old's config again after a failed reload. It ran before,
// so a failure now comes from the world (a password file removed meanwhile,
// say): it is tried a few times with backoff.
func (s *Supervisor) restore(old *running) (*running, error) {
	var err error
	for attempt, wait := 1, s.restoreBackoff; attempt <= restoreAttempts; attempt, wait = attempt+1, 2*wait {
		var c *candidate
		if c, err = s.build.build(old.id, old.file, old.text); err == nil {
			var r *running
			if r, err = s.startAndWait(c, false); err == nil {
				return r, nil
			}
		}
		if attempt < restoreAttempts {
			s.log.Error("Could not restart the previous config; retrying", "stream", old.id, "attempt", attempt, "error", err.Error())
			time.Sleep(wait)
		}
	}
	return nil, err
}

// adopt makes r the stream of its id and watches for it ending by itself.
func (s *Supervisor) adopt(r *running) {
	s.mu.Lock()
	s.streams[r.id] = r
	s.mu.Unlock()
	go func() {
		<-r.done
		if !r.stoppedByUs() {
			s.ended <- r
		}
	}()
}

// stopAll drains every stream, in parallel, and refuses later reloads.
func (s *Supervisor) stopAll() {
	s.reloads.Lock()
	defer s.reloads.Unlock()
	s.closing = true
	s.mu.Lock()
	all := make([]*running, 0, len(s.streams))
	for _, r := range s.streams {
		all = append(all, r)
	}
	s.streams = map[string]*running{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, r := range all {
		wg.Go(func() {
			if err := r.stop(s.opts.DrainTimeout); err != nil {
				s.log.Warn("Stream did not drain in time; it was closed", "stream", r.id, "error", err.Error())
			}
		})
	}
	wg.Wait()
}

// streamID names the stream a file defines: its name without extension.
func streamID(file string) string {
	base := filepath.Base(file)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// FirstConfig is the config file that configures what the process shares,
// its logger: the first target, or for a directory its first config file
// by name. It is "" when a directory holds none.
func FirstConfig(targets []string) string {
	for _, t := range targets {
		st, err := os.Stat(t)
		if err != nil || !st.IsDir() {
			return t
		}
		entries, _ := os.ReadDir(t)
		for _, e := range entries {
			if !e.IsDir() && isConfigFile(e.Name()) {
				return filepath.Join(t, e.Name())
			}
		}
	}
	return ""
}

// isConfigFile reports whether name is a YAML file, not an editor's backup
// or swap file.
func isConfigFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	ext := filepath.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

func sinceIf(cond bool, t time.Time) float64 {
	if !cond {
		return 0
	}
	return time.Since(t).Seconds()
}
