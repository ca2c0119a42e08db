package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

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
	// done is closed when Run returns; err is what it returned.
	done chan struct{}
	err  error
	// stopping is set before the supervisor stops the stream, so that its
	// end is not mistaken for the stream ending by itself.
	mu       sync.Mutex
	stopping bool
}

// builder turns config text into a built stream. It holds what every stream
// of the process shares: the logger and the --set overrides.
type builder struct {
	log       *slog.Logger
	sets      []fieldSet
	labelByID bool
	envLookup func(string) (string, bool)
}

// fieldSet is one --set path=value override.
type fieldSet struct {
	path  string
	value any
}

// parseSets parses --set arguments; values are YAML, as in `qiflow run --set`.
func parseSets(args []string) ([]fieldSet, error) {
	sets := make([]fieldSet, 0, len(args))
	for _, a := range args {
		path, raw, ok := strings.Cut(a, "=")
		if !ok || path == "" {
			return nil, fmt.Errorf("--set %q: want path=value", a)
		}
		var v any
		if err := yaml.Unmarshal([]byte(raw), &v); err != nil {
			return nil, fmt.Errorf("--set %q: value: %w", a, err)
		}
		if v == nil {
			v = raw
		}
		sets = append(sets, fieldSet{path: path, value: v})
	}
	return sets, nil
}

// applySets writes the --set overrides into the config text. It edits the
// YAML rather than using StreamBuilder.SetFields, which re-encodes the whole
// config with its secret fields scrubbed (a dsn would become
// "!!!SECRET_SCRUBBED!!!").
func applySets(text string, sets []fieldSet) (string, error) {
	if len(sets) == 0 {
		return text, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return "", fmt.Errorf("invalid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	for _, s := range sets {
		var value yaml.Node
		if err := value.Encode(s.value); err != nil {
			return "", fmt.Errorf("--set %s: %w", s.path, err)
		}
		if err := setPath(doc.Content[0], strings.Split(s.path, "."), &value); err != nil {
			return "", fmt.Errorf("--set %s: %w", s.path, err)
		}
	}
	out, err := yaml.Marshal(&doc)
	return string(out), err
}

// setPath sets the field at path below node, creating mappings on the way.
func setPath(node *yaml.Node, path []string, value *yaml.Node) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("%s is not a mapping", path[0])
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if node.Content[i].Value == path[0] {
			if len(path) == 1 {
				node.Content[i+1] = value
				return nil
			}
			if node.Content[i+1].Kind != yaml.MappingNode {
				node.Content[i+1] = &yaml.Node{Kind: yaml.MappingNode}
			}
			return setPath(node.Content[i+1], path[1:], value)
		}
	}
	child := value
	if len(path) > 1 {
		child = &yaml.Node{Kind: yaml.MappingNode}
		if err := setPath(child, path[1:], value); err != nil {
			return err
		}
	}
	node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: path[0]}, child)
	return nil
}

// build lints and builds text. Nothing runs and nothing connects yet: a
// config that fails here never touches the running stream.
func (b *builder) build(id, file, text string) (*candidate, error) {
	top, err := parseStream(text)
	if err != nil {
		return nil, err
	}
	sets := b.sets
	if b.labelByID {
		sets = append(sets[:len(sets):len(sets)], streamLabel(id, top)...)
	}
	conf, err := applySets(text, sets)
	if err != nil {
		return nil, err
	}
	sb := service.NewStreamBuilder()
	if b.envLookup != nil {
		sb.SetEnvVarLookupFunc(b.envLookup)
	}
	if err := sb.SetYAML(conf); err != nil {
		return nil, fmt.Errorf("lint: %w", err)
	}
	log := b.log
	if b.labelByID {
		log = log.With("stream", id)
	}
	sb.SetLogger(log)
	ep := &endpoints{}
	sb.SetHTTPMux(ep)
	strm, err := sb.Build()
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	return &candidate{id: id, file: file, text: text, strm: strm, endpoints: ep, scope: result.ScopeOf(strm.Resources())}, nil
}

// parseStream returns the top-level sections of text. It refuses YAML that
// is valid but plainly not a pipeline, such as a schema or topics spec left
// in a watched directory: Benthos would otherwise run it as stdin to stdout.
func parseStream(text string) (map[string]any, error) {
	var top map[string]any
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	for _, k := range []string{"input", "output", "pipeline"} {
		if _, ok := top[k]; ok {
			return top, nil
		}
	}
	return nil, errors.New("not a pipeline config: it has no input, pipeline or output section")
}

// streamLabel adds the label stream="<id>" to every metric of a stream in
// streams mode, as Benthos's own streams mode does, through the metrics
// mapping. A config with a mapping of its own keeps it, unlabelled.
func streamLabel(id string, top map[string]any) []fieldSet {
	label := fieldSet{path: "metrics.mapping", value: fmt.Sprintf("meta stream = %q", id)}
	metrics, ok := top["metrics"].(map[string]any)
	switch {
	case !ok:
		return []fieldSet{{path: "metrics.prometheus", value: map[string]any{}}, label}
	case metrics["mapping"] != nil:
		return nil
	}
	return []fieldSet{label}
}

// start runs c in the background.
func start(c *candidate, generation int) *running {
	r := &running{candidate: c, generation: generation, startedAt: time.Now(), done: make(chan struct{})}
	go func() {
		r.err = c.strm.Run(context.Background())
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

// errNotReady says a stream did not connect in time.
var errNotReady = errors.New("not ready")

// awaitReady waits until r is ready. It fails as soon as the stream halts
// (bad credentials) or ends, and after timeout when it is still connecting.
func (r *running) awaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := r.scope.Halted(); err != nil {
			return fmt.Errorf("stopped at start: %w", err)
		}
		if r.ended() {
			if r.err != nil {
				return fmt.Errorf("failed to start: %w", r.err)
			}
			return errors.New("ended as soon as it started")
		}
		ok, status := r.ready()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w within %s: %s", errNotReady, timeout, status)
		}
		<-tick.C
	}
}

// awaitStarted waits until r's components are constructed, and returns the
// error when construction failed. It does not wait for connections.
func (r *running) awaitStarted() error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for r.endpoints.handler("/ready") == nil {
		if r.ended() {
			if r.err != nil {
				return fmt.Errorf("failed to start: %w", r.err)
			}
			return nil
		}
		<-tick.C
	}
	return nil
}

// stop drains r: its input stops, in-flight messages are written and acked,
// offsets are committed, then every component closes. After timeout the stop
// turns ungraceful; acked offsets stay committed, so nothing is lost.
func (r *running) stop(timeout time.Duration) error {
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	if r.ended() {
		return nil
	}
	err := r.strm.StopWithin(timeout)
	<-r.done
	return err
}

// stoppedByUs reports whether the supervisor asked r to stop.
func (r *running) stoppedByUs() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopping
}
