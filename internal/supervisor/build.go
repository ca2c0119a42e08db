package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/result"
)

// builder turns config text into a built stream. It holds what every stream
// of the process shares: the logger and the --set overrides.
type builder struct {
	log       *slog.Logger
	overrides []override
	labelByID bool
	envLookup func(string) (string, bool)
}

// override is one --set path=value.
type override struct {
	path  string
	value any
}

// parseOverrides parses --set arguments; values are YAML, as in
// `qiflow run --set`.
func parseOverrides(args []string) ([]override, error) {
	out := make([]override, 0, len(args))
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
		out = append(out, override{path: path, value: v})
	}
	return out, nil
}

// build lints text, constructs its components once without connecting or
// consuming, and builds the stream. Nothing of it runs yet: a config that
// fails here never touches the running stream.
func (b *builder) build(id, file, text string) (*candidate, error) {
	top, err := parseStream(text)
	if err != nil {
		return nil, err
	}
	// Lint the file as written, so that errors point at its lines; the
	// overrides below re-encode it.
	if err := b.newStreamBuilder().SetYAML(text); err != nil {
		return nil, fmt.Errorf("lint: %w", err)
	}
	overrides := b.overrides
	if b.labelByID {
		overrides = append(overrides[:len(overrides):len(overrides)], streamLabel(id, top)...)
	}
	conf, err := applyOverrides(text, overrides)
	if err != nil {
		return nil, err
	}
	sb := b.newStreamBuilder()
	if err := sb.SetYAML(conf); err != nil {
		return nil, fmt.Errorf("lint with --set: %w", err)
	}
	if err := b.preflight(conf); err != nil {
		return nil, err
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

func (b *builder) newStreamBuilder() *service.StreamBuilder {
	sb := service.NewStreamBuilder()
	if b.envLookup != nil {
		sb.SetEnvVarLookupFunc(b.envLookup)
	}
	return sb
}

// preflightTimeout bounds closing the components a preflight constructed.
const preflightTimeout = 10 * time.Second

// preflightInputs are the inputs whose constructors only parse, so that one
// can be constructed and dropped without being started: Benthos closes an
// input only once it ran, and an input that binds a port or opens a file in
// its constructor (http_server, say) would keep it.
var preflightInputs = map[string]bool{"redpanda": true, "market_data": true, "generate": true}

// preflight constructs the components of conf once and closes them again.
// StreamBuilder.Build does not construct them (Benthos does that when the
// stream runs), so without this a constructor's error (a pool_size of 0, a
// password file that is missing, a plugin that cannot be found) would
// surface only after the running stream was drained.
//
// The processors and the output are built as resources of a started
// manager, which closes them properly; the output may connect meanwhile,
// which costs a connection for a moment and nothing else. The input is built
// suspended (it neither connects nor consumes), and only when its type is in
// preflightInputs. A component that binds a listening socket in its
// constructor cannot be built while the running stream holds the port; that
// one error is let through, and the real start after the drain decides.
func (b *builder) preflight(conf string) error {
	var top map[string]any
	if err := yaml.Unmarshal([]byte(conf), &top); err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	suspended, started := b.newResourceBuilder(), b.newResourceBuilder()
	var inputs, others []component
	if in, ok := top["input"].(map[string]any); ok && preflightInputs[componentType(in)] {
		c, err := newComponent("input", "input", in, suspended.AddInputYAML, accessInput)
		if err != nil {
			return err
		}
		inputs = append(inputs, c)
	}
	if pipeline, ok := top["pipeline"].(map[string]any); ok {
		procs, _ := pipeline["processors"].([]any)
		for i, p := range procs {
			if m, ok := p.(map[string]any); ok {
				c, err := newComponent(fmt.Sprintf("pipeline.processors.%d", i), "processor", m, started.AddProcessorYAML, accessProcessor)
				if err != nil {
					return err
				}
				others = append(others, c)
			}
		}
	}
	if out, ok := top["output"].(map[string]any); ok {
		c, err := newComponent("output", "output", out, started.AddOutputYAML, accessOutput)
		if err != nil {
			return err
		}
		others = append(others, c)
	}
	err := b.construct(suspended.BuildSuspended, inputs)
	if err == nil {
		err = b.construct(started.Build, others)
	}
	if err != nil && !strings.Contains(err.Error(), syscall.EADDRINUSE.Error()) {
		return err
	}
	return nil
}

func (b *builder) newResourceBuilder() *service.ResourceBuilder {
	rb := service.NewResourceBuilder()
	rb.SetLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	_ = rb.SetMetricsYAML("none: {}")
	if b.envLookup != nil {
		rb.SetEnvVarLookupFunc(func(_ context.Context, k string) (string, bool) { return b.envLookup(k) })
	}
	return rb
}

// component is one component of a config, added to a resource builder
// under a label of its own.
type component struct {
	section, kind, label string
	access               func(context.Context, *service.Resources, string) error
}

func newComponent(section, kind string, conf map[string]any, add func(string) error, access func(context.Context, *service.Resources, string) error) (component, error) {
	labelled := make(map[string]any, len(conf)+1)
	for k, v := range conf {
		labelled[k] = v
	}
	label, _ := labelled["label"].(string)
	if label == "" {
		label = "preflight_" + strings.ReplaceAll(section, ".", "_")
		labelled["label"] = label
	}
	raw, err := yaml.Marshal(labelled)
	if err != nil {
		return component{}, err
	}
	if err := add(string(raw)); err != nil {
		return component{}, fmt.Errorf("%s: %w", section, err)
	}
	return component{section: section, kind: kind, label: label, access: access}, nil
}

// construct builds the resources, constructs each component by accessing
// it, and closes everything again.
func (b *builder) construct(build func() (*service.Resources, func(context.Context) error, error), components []component) error {
	if len(components) == 0 {
		return nil
	}
	res, closeAll, err := build()
	if err != nil {
		return fmt.Errorf("construct: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), preflightTimeout)
	defer cancel()
	for _, c := range components {
		if err = c.access(ctx, res, c.label); err != nil {
			// Name the component as the config does, not as the resource
			// the preflight made of it.
			msg := strings.ReplaceAll(err.Error(), fmt.Sprintf("'%s' path root.%s_resources", c.label, c.kind), "path root."+c.section)
			err = fmt.Errorf("%s: %s", c.section, msg)
			break
		}
	}
	if closeErr := closeAll(ctx); closeErr != nil {
		b.log.Warn("Closing the components of a preflight took too long", "error", closeErr.Error())
	}
	return err
}

// componentType is the type of a component config: its one key that is not
// a common field.
func componentType(conf map[string]any) string {
	for k := range conf {
		if k != "label" && k != "processors" {
			return k
		}
	}
	return ""
}

func accessInput(ctx context.Context, res *service.Resources, name string) error {
	return res.AccessInput(ctx, name, func(*service.ResourceInput) {})
}

func accessProcessor(ctx context.Context, res *service.Resources, name string) error {
	return res.AccessProcessor(ctx, name, func(*service.ResourceProcessor) {})
}

func accessOutput(ctx context.Context, res *service.Resources, name string) error {
	return res.AccessOutput(ctx, name, func(*service.ResourceOutput) {})
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
	return nil, errNotAPipeline
}

// errNotAPipeline marks a file in a watched directory that is not a pipeline
// config; it does not count against readiness.
var errNotAPipeline = errors.New("not a pipeline config: it has no input, pipeline or output section")

// streamLabel adds the label stream="<id>" to every metric of a stream in
// streams mode, as Benthos's own streams mode does, through the metrics
// mapping. A config with a mapping of its own keeps it, unlabelled.
func streamLabel(id string, top map[string]any) []override {
	label := override{path: "metrics.mapping", value: fmt.Sprintf("meta stream = %q", id)}
	metrics, ok := top["metrics"].(map[string]any)
	switch {
	case !ok:
		return []override{{path: "metrics.prometheus", value: map[string]any{}}, label}
	case metrics["mapping"] != nil:
		return nil
	}
	return []override{label}
}

// applyOverrides writes the --set overrides into the config text. It edits
// the YAML rather than using StreamBuilder.SetFields, which re-encodes the
// whole config with its secret fields scrubbed (a dsn would become
// "!!!SECRET_SCRUBBED!!!").
func applyOverrides(text string, overrides []override) (string, error) {
	if len(overrides) == 0 {
		return text, nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		return "", fmt.Errorf("invalid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		doc = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	for _, o := range overrides {
		var value yaml.Node
		if err := value.Encode(o.value); err != nil {
			return "", fmt.Errorf("--set %s: %w", o.path, err)
		}
		if err := setPath(doc.Content[0], strings.Split(o.path, "."), &value); err != nil {
			return "", fmt.Errorf("--set %s: %w", o.path, err)
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
