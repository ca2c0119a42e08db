package external

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

// Processor field names.
const (
	exFieldPlugin         = "plugin"
	exFieldConfig         = "config"
	exFieldEnv            = "env"
	exFieldTimeout        = "timeout"
	exFieldStartTimeout   = "start_timeout"
	exFieldHealthInterval = "health_interval"
	exFieldHealthTimeout  = "health_timeout"
	exFieldMaxRestarts    = "max_restarts"
	exFieldRestartWindow  = "restart_window"
	exFieldBackoff        = "backoff"
	exFieldBackoffInitial = "initial_interval"
	exFieldBackoffMax     = "max_interval"
)

func processorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Summary("Hands batches of messages to an out-of-process plugin, built with qiflow's plugin SDK, that transforms them; a plugin that crashes or hangs is restarted and loses no message.").
		Description(`
The plugin is a program built with `+"`github.com/qicore/qiflow/pkg/pluginsdk`"+` (docs/plugins.md). qiflow runs it as a child process with hashicorp/go-plugin and calls it over gRPC on a Unix socket.

**Discovery.** A `+"`plugin`"+` without a `+"`/`"+` is a name: qiflow runs `+"`qiflow-plugin-<name>`"+` from the directory in `+"`QIFLOW_PLUGIN_DIR`"+` (default `+"`./plugins.d`"+`). A value with a `+"`/`"+` is a path to the executable.

**Lifecycle.** When the pipeline is built, qiflow starts the plugin, hands it `+"`config`"+` and stops it again, so that a missing or incompatible plugin, or a config it rejects, stops qiflow at startup with a clear error. The process that does the work starts on the first batch, in its own process group, and stops, with whatever it started, when the pipeline stops. A plugin built with the SDK also exits on its own when qiflow dies, even of SIGKILL, and even under a wrapper script.

**Restarts.** A plugin that crashes, does not answer a batch within `+"`timeout`"+`, or fails its health check is killed and restarted after a backoff, and the batch in flight is sent again to the new process: no message is lost and none is processed twice downstream. A batch lost twice is bisected until the messages that crash or hang the plugin stand alone: such a message, lost twice on its own while the plugin processed others, fails with a BUSINESS error (code `+"`plugin_crashed`"+` or `+"`plugin_timeout`"+`) for the dead-letter topic, and the restarts spent on it do not count against `+"`max_restarts`"+` (at most 2×log2(batch size)+4 per batch). A gRPC status such as `+"`InvalidArgument`"+` or `+"`ResourceExhausted`"+` in the plugin's answer restarts nothing: the batch gets a transient EXTERNAL error, `+"`plugin_contract`"+`. After `+"`max_restarts`"+` restarts within `+"`restart_window`"+` the plugin counts as failed: qiflow logs an error, and each batch then waits `+"`backoff.max_interval`"+` and leaves with a transient SYSTEM error (code `+"`plugin_unavailable`"+`), which a `+"`reject_errored`"+` output turns into a nack: the redpanda input replays the messages later and never commits past them. qiflow starts the plugin again once the oldest restart leaves the window.

**Errors.** A message the plugin fails on its own (`+"`Message.Fail`"+`) continues with its original payload and a BUSINESS error, and the metadata `+"`qiflow-error-category`, `qiflow-error-code` and `qiflow-error`"+` (plus `+"`qiflow-source-topic`, `-partition` and `-offset`"+` for Kafka messages), so that a `+"`switch`"+` output can send it to the dead-letter topic with those headers. Messages of a batch the plugin fails as a whole, or that the plugin could not process, carry a transient EXTERNAL or SYSTEM error: route errored messages that are not BUSINESS to `+"`reject_errored`"+` so they are retried, never written. See pipelines/examples/prices_normalized.yaml.

**Observability.** The plugin's standard error is logged with the field `+"`plugin`"+`. Metrics, labelled by `+"`plugin`"+`: `+"`qiflow_external_plugin_calls_total`, `qiflow_external_plugin_call_errors_total`, `qiflow_external_plugin_call_latency_seconds`, `qiflow_external_plugin_restarts_total`, `qiflow_external_plugin_failures_total` and `qiflow_external_plugin_message_errors_total`"+`.`).
		Fields(
			service.NewStringField(exFieldPlugin).
				Description("The plugin: a name, run as `qiflow-plugin-<name>` from `QIFLOW_PLUGIN_DIR` (default `./plugins.d`), or a path to its executable (any value with a `/`).").
				Example("symbol_normalizer").
				Example("/opt/qiflow/plugins/qiflow-plugin-enrich"),
			service.NewAnyField(exFieldConfig).
				Description("Configuration for the plugin, any YAML, handed to its `Configure` as JSON on every start. Environment variables are interpolated as anywhere in the config.").
				Default(map[string]any{}).
				Example(map[string]any{"mapping": map[string]any{"xbt": "BTC", "xdg": "DOGE"}}),
			service.NewStringMapField(exFieldEnv).
				Description("Environment variables for the plugin, besides the few it inherits from qiflow (`PATH`, `HOME`, `TMPDIR`, `TZ`, `LANG`, `LC_*`, `SSL_CERT_FILE`, `SSL_CERT_DIR`). qiflow's other variables, its credentials among them, are not passed on: give a plugin what it needs here, interpolated from qiflow's environment.").
				Default(map[string]any{}).
				Example(map[string]any{"ENRICHER_TOKEN": "${ENRICHER_TOKEN}", "HTTPS_PROXY": "http://proxy:3128"}),
			service.NewDurationField(exFieldTimeout).
				Description("How long the plugin may take to answer one batch. A plugin that takes longer counts as hung: it is killed and restarted, and the batch is sent to the new process.").
				Default("30s").
				Example("5s"),
			service.NewDurationField(exFieldStartTimeout).
				Description("How long a plugin process may take to start, complete its handshake and accept its config.").
				Default("10s").
				Example("1m"),
			service.NewDurationField(exFieldHealthInterval).
				Description("How often qiflow checks the plugin's health (its `CheckHealth`, or only that it answers). `0s` turns the check off.").
				Default("10s").
				Example("0s"),
			service.NewDurationField(exFieldHealthTimeout).
				Description("How long a health check may take before it counts as failed.").
				Default("5s").
				Example("1s"),
			service.NewIntField(exFieldMaxRestarts).
				Description("How many restarts within `restart_window` the plugin gets. Past that it counts as failed, and batches are returned with a transient error until a restart is allowed again. `0` means a plugin is never restarted before the window has passed.").
				Default(5).
				Example(10),
			service.NewDurationField(exFieldRestartWindow).
				Description("The sliding window in which `max_restarts` is counted.").
				Default("1m").
				Example("10m"),
			service.NewObjectField(exFieldBackoff,
				service.NewDurationField(exFieldBackoffInitial).
					Description("The wait before the first restart within `restart_window`; it doubles with each further restart in the window.").
					Default("200ms").
					Example("1s"),
				service.NewDurationField(exFieldBackoffMax).
					Description("The longest wait before a restart, and how long each batch waits while the plugin counts as failed, so that the pipeline does not spin.").
					Default("10s").
					Example("30s"),
			).Description("The backoff between restarts of the plugin."),
		).
		Example("Normalise symbols", "Run the example plugin on price messages; what it rejects goes to the dead-letter topic, and what it could not process is replayed. Connections come from the profile.", `
input:
  redpanda:
    topics: [ crypto-prices ]
    consumer_group: qiflow-prices
pipeline:
  processors:
    - external:
        plugin: symbol_normalizer
        config:
          mapping: { xbt: BTC, xdg: DOGE }
output:
  switch:
    cases:
      - check: 'metadata("qiflow-error-category") == "BUSINESS"'
        output:
          redpanda:
            topic: crypto-prices.dlq
            metadata:
              include_prefixes: [ "qiflow-" ]
      - output:
          reject_errored:
            redpanda:
              topic: crypto-prices-normalized
`)
}

func init() {
	err := service.RegisterBatchProcessor("external", processorSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			c, err := configFromParsed(conf)
			if err != nil {
				return nil, err
			}
			return newProcessor(c, mgr.Logger(), newMetrics(mgr.Metrics()))
		})
	if err != nil {
		panic(err)
	}
}

// config is the parsed processor configuration.
type config struct {
	// plugin is the field as given; path the executable it resolves to; name
	// the plugin's name in logs and metric labels.
	plugin, path, name string
	configJSON         []byte
	env                map[string]string // extra environment variables

	timeout, startTimeout         time.Duration
	healthInterval, healthTimeout time.Duration
	maxRestarts                   int
	restartWindow                 time.Duration
	backoffInitial, backoffMax    time.Duration
}

// configFromParsed reads and checks the fields, and resolves the plugin to
// its executable.
func configFromParsed(conf *service.ParsedConfig) (config, error) {
	var c config
	var err error
	if c.plugin, err = conf.FieldString(exFieldPlugin); err != nil {
		return c, err
	}
	raw, err := conf.FieldAny(exFieldConfig)
	if err != nil {
		return c, err
	}
	if raw == nil {
		raw = map[string]any{}
	}
	if c.configJSON, err = json.Marshal(raw); err != nil {
		return c, fmt.Errorf("%s: encode as JSON: %w", exFieldConfig, err)
	}
	if c.env, err = conf.FieldStringMap(exFieldEnv); err != nil {
		return c, err
	}
	durations := []struct {
		field string
		dst   *time.Duration
		zero  bool // zero is allowed
	}{
		{exFieldTimeout, &c.timeout, false},
		{exFieldStartTimeout, &c.startTimeout, false},
		{exFieldHealthInterval, &c.healthInterval, true},
		{exFieldHealthTimeout, &c.healthTimeout, false},
		{exFieldRestartWindow, &c.restartWindow, false},
	}
	for _, d := range durations {
		if *d.dst, err = conf.FieldDuration(d.field); err != nil {
			return c, err
		}
		if *d.dst < 0 || (*d.dst == 0 && !d.zero) {
			return c, fmt.Errorf("%s must be positive, got %v", d.field, *d.dst)
		}
	}
	if c.maxRestarts, err = conf.FieldInt(exFieldMaxRestarts); err != nil {
		return c, err
	}
	if c.maxRestarts < 0 {
		return c, fmt.Errorf("%s must be 0 or more, got %d", exFieldMaxRestarts, c.maxRestarts)
	}
	if c.backoffInitial, err = conf.FieldDuration(exFieldBackoff, exFieldBackoffInitial); err != nil {
		return c, err
	}
	if c.backoffMax, err = conf.FieldDuration(exFieldBackoff, exFieldBackoffMax); err != nil {
		return c, err
	}
	if c.backoffInitial <= 0 || c.backoffMax < c.backoffInitial {
		return c, fmt.Errorf("%s: want 0 < %s <= %s, got %v and %v", exFieldBackoff, exFieldBackoffInitial, exFieldBackoffMax, c.backoffInitial, c.backoffMax)
	}
	c.path, c.name, err = resolvePlugin(c.plugin)
	return c, err
}

// processor is the external processor: it sends each batch to the plugin
// through its supervisor and applies the results.
type processor struct {
	sup     *supervisor
	metrics metrics
	name    string
}

// newProcessor checks that the plugin starts and accepts its config; the
// process that does the work starts on the first batch. See supervisor.
func newProcessor(c config, log *service.Logger, m metrics) (*processor, error) {
	sup := newSupervisor(c, log, m)
	if err := sup.validate(); err != nil {
		return nil, err
	}
	m.zero(c.name)
	return &processor{sup: sup, metrics: m, name: c.name}, nil
}

// ProcessBatch sends the batch to the plugin and applies what it answers.
// It never returns an error of its own: every message comes back, changed,
// dropped by the plugin, or with an error whose category says what to do.
// A message that crashes or hangs the plugin is isolated (see isolation)
// and fails alone.
func (p *processor) ProcessBatch(ctx context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	if len(batch) == 0 {
		return nil, nil
	}
	iso := &isolation{p: p, batch: batch, dropped: make([]bool, len(batch))}
	iso.run(ctx)
	out := batch[:0]
	for i, m := range batch {
		if !iso.dropped[i] {
			out = append(out, m)
		}
	}
	if len(out) > 0 {
		return []service.MessageBatch{out}, nil
	}
	return nil, nil // the plugin dropped every message: they are done
}

// settle applies the plugin's answer for batch, or marks its messages with
// the call's error, and records in dropped, aligned with batch, what the
// plugin dropped.
func (p *processor) settle(batch service.MessageBatch, dropped []bool, resp *pluginpb.ProcessBatchResponse, err error) {
	if err == nil && resp.BatchError != "" {
		p.sup.log.Warnf("Plugin %s failed a batch of %d messages, which the input retries: %s", p.name, len(batch), resp.BatchError)
		err = result.New(result.External, "plugin_batch_error",
			fmt.Sprintf("plugin %s failed the batch: %s", p.name, resp.BatchError)).AsTransient()
	}
	if err == nil {
		if err = checkResponse(resp, len(batch)); err != nil {
			p.sup.log.Errorf("Plugin %s answered a batch of %d messages wrongly, so the batch is retried: %v", p.name, len(batch), err)
			err = result.Wrap(result.System, "plugin_contract", err, "plugin "+p.name).AsTransient()
		}
	}
	if err != nil {
		failAll(batch, err)
		return
	}
	p.apply(batch, dropped, resp)
}

// request encodes a batch for the plugin, the metadata of all messages in
// one buffer.
func request(batch service.MessageBatch) *pluginpb.ProcessBatchRequest {
	req := &pluginpb.ProcessBatchRequest{
		Payloads: make([][]byte, len(batch)),
		Metadata: make([][]byte, len(batch)),
	}
	metadata := make([]byte, 0, 128*len(batch))
	for i, m := range batch {
		// AsBytes fails only for structured content that cannot be
		// serialised; the plugin then sees an empty payload and decides.
		req.Payloads[i], _ = m.AsBytes()
		start := len(metadata)
		_ = m.MetaWalk(func(k, v string) error {
			metadata = pluginpb.AppendMetadata(metadata, k, v)
			return nil
		})
		req.Metadata[i] = metadata[start:len(metadata):len(metadata)]
	}
	return req
}

// checkResponse verifies that a response fits a batch of n messages, before
// any of it is applied: a plugin not built with the SDK might get the
// protocol wrong, and a misread response would lose messages.
func checkResponse(resp *pluginpb.ProcessBatchResponse, n int) error {
	if len(resp.Payloads) != n {
		return fmt.Errorf("%d payloads for %d messages", len(resp.Payloads), n)
	}
	if len(resp.Metadata) != len(resp.MetadataChanged) {
		return fmt.Errorf("metadata for %d messages, but %d listed as changed", len(resp.Metadata), len(resp.MetadataChanged))
	}
	failed := make([]uint32, len(resp.Failures))
	for i, f := range resp.Failures {
		failed[i] = f.Index
	}
	for _, list := range []struct {
		name    string
		indexes []uint32
	}{{"metadata_changed", resp.MetadataChanged}, {"dropped", resp.Dropped}, {"failures", failed}} {
		for i, idx := range list.indexes {
			if int(idx) >= n || (i > 0 && idx <= list.indexes[i-1]) {
				return fmt.Errorf("%s: indexes must ascend and stay below %d, got %v", list.name, n, list.indexes)
			}
		}
	}
	for _, md := range resp.Metadata {
		if err := pluginpb.RangeMetadata(md, func(_, _ []byte) bool { return true }); err != nil {
			return err
		}
	}
	return nil
}

// apply applies a checked response to the batch in place and marks in
// dropped the messages the plugin dropped. A failed message keeps its
// payload and metadata.
func (p *processor) apply(batch service.MessageBatch, dropped []bool, resp *pluginpb.ProcessBatchResponse) {
	failures, drops, changed, metadata := resp.Failures, resp.Dropped, resp.MetadataChanged, resp.Metadata
	for i, m := range batch {
		// Each list ascends: take this message's entries off their fronts.
		idx := uint32(i)
		var failure *pluginpb.Failure
		if len(failures) > 0 && failures[0].Index == idx {
			failure, failures = failures[0], failures[1:]
		}
		drop := len(drops) > 0 && drops[0] == idx
		if drop {
			drops = drops[1:]
		}
		var md []byte
		if len(changed) > 0 && changed[0] == idx {
			md, changed, metadata = metadata[0], changed[1:], metadata[1:]
		}
		switch {
		case failure != nil:
			code := failure.Code
			if code == "" {
				code = "plugin_rejected"
			}
			setError(m, result.New(result.Business, code, failure.Error).With("plugin", p.name))
		case drop:
			dropped[i] = true
		default:
			m.SetBytes(resp.Payloads[i])
			if md != nil {
				replaceMetadata(m, md)
			}
		}
	}
	p.metrics.messageErrors.Incr(int64(len(resp.Failures)), p.name)
}

// replaceMetadata makes the plugin's encoded metadata the message's.
func replaceMetadata(m *service.Message, encoded []byte) {
	md := make(map[string]string, 8)
	_ = pluginpb.RangeMetadata(encoded, func(k, v []byte) bool {
		md[string(k)] = string(v)
		return true
	})
	var stale []string
	_ = m.MetaWalkMut(func(k string, _ any) error {
		if _, ok := md[k]; !ok {
			stale = append(stale, k)
		}
		return nil
	})
	for _, k := range stale {
		m.MetaDelete(k)
	}
	for k, v := range md {
		m.MetaSetMut(k, v)
	}
}

// failAll marks every message of the batch with err.
func failAll(batch service.MessageBatch, err error) {
	for _, m := range batch {
		setError(m, err)
	}
}

// setError marks a message as failed, with the dead-letter headers as
// metadata.
func setError(m *service.Message, err error) {
	m.SetError(result.MarkDeadLetter(m, err))
}

// Close stops the plugin.
func (p *processor) Close(ctx context.Context) error {
	return p.sup.close(ctx)
}

// errClosed is returned for a batch that arrives after Close.
var errClosed = errors.New("the external processor is closed")
