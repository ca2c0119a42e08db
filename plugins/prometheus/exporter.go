// Package prometheus provides the prometheus metrics exporter: every Benthos
// and qiflow metric, served in the Prometheus text format at /metrics of the
// HTTP server.
package prometheus

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/metricdoc"
)

// Field names.
const (
	fieldPrefix           = "prefix"
	fieldProcessMetrics   = "add_process_metrics"
	fieldGoMetrics        = "add_go_metrics"
	fieldHistogramBuckets = "histogram_buckets"
)

func spec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Stable().
		Summary("Serves every metric in the Prometheus text format at `/metrics` of the HTTP server.").
		Description("Counters stay counters and get the `_total` suffix, gauges stay gauges, and timers (named `…_ns` inside Benthos) become histograms in seconds (named `…_seconds`). Every metric has a description as its HELP text. qiflow's own metrics, such as `qiflow_timescale_rows_written_total` or `qiflow_timescale_end_to_end_latency_seconds`, appear next to Benthos's standard ones (docs/metrics.md).").
		Fields(
			service.NewStringField(fieldPrefix).
				Description("A prefix for every metric name, e.g. `qiflow`.").
				Default("").
				Example("qiflow"),
			service.NewBoolField(fieldProcessMetrics).
				Description("Also export the process's CPU, memory and file descriptors.").
				Default(true),
			service.NewBoolField(fieldGoMetrics).
				Description("Also export the Go runtime's metrics: goroutines, GC, heap.").
				Default(true),
			service.NewFloatListField(fieldHistogramBuckets).
				Description("Bucket upper bounds, in seconds, of the histograms made from timers.").
				Default([]any{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
		)
}

func init() {
	err := service.RegisterMetricsExporter("prometheus", spec(),
		func(conf *service.ParsedConfig, _ *service.Logger) (service.MetricsExporter, error) {
			return newExporterFromConfig(conf)
		})
	if err != nil {
		panic(err)
	}
}

// registry is the process's one Prometheus registry. Every exporter the
// process creates, one per stream and a new one on each reload, feeds it, so
// counters run on across a reload instead of restarting from zero, and the
// reload supervisor serves it and adds its own metrics.
var registry = struct {
	*prometheus.Registry
	mu      sync.Mutex
	vectors map[string]prometheus.Collector
	process sync.Once
	runtime sync.Once
}{Registry: prometheus.NewRegistry(), vectors: map[string]prometheus.Collector{}}

// Registry returns the process-wide registry the exporters feed; other parts
// of qiflow register their collectors in it.
func Registry() *prometheus.Registry { return registry.Registry }

// Handler serves the process-wide registry in the Prometheus text format.
func Handler() http.Handler { return promhttp.HandlerFor(registry.Registry, promhttp.HandlerOpts{}) }

// exporter names metrics and finds their vectors in the shared registry.
type exporter struct {
	prefix  string
	buckets []float64
}

func newExporterFromConfig(conf *service.ParsedConfig) (*exporter, error) {
	prefix, err := conf.FieldString(fieldPrefix)
	if err != nil {
		return nil, err
	}
	buckets, err := conf.FieldFloatList(fieldHistogramBuckets)
	if err != nil {
		return nil, err
	}
	if on, err := conf.FieldBool(fieldProcessMetrics); err != nil {
		return nil, err
	} else if on {
		registry.process.Do(func() {
			registry.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		})
	}
	if on, err := conf.FieldBool(fieldGoMetrics); err != nil {
		return nil, err
	} else if on {
		registry.runtime.Do(func() { registry.MustRegister(collectors.NewGoCollector()) })
	}
	return &exporter{prefix: prefix, buckets: buckets}, nil
}

// metricName turns a Benthos metric name into a valid Prometheus one.
func (e *exporter) metricName(name string) string {
	if e.prefix != "" {
		name = e.prefix + "_" + name
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == ':':
			return r
		}
		return '_'
	}, name)
}

// vector returns the collector registered under name with labelKeys,
// creating it with create the first time. A name reused with other labels
// (a reload that adds a metrics mapping, say) or as another kind keeps its
// first definition, and the later user gets a detached collector of its own:
// its values are not served, but a mismatched metric can neither panic nor
// break the endpoint.
func vector[V prometheus.Collector](name string, labelKeys []string, create func() V) V {
	key := name + "{" + strings.Join(labelKeys, ",") + "}"
	registry.mu.Lock()
	defer registry.mu.Unlock()
	if existing, ok := registry.vectors[key]; ok {
		if v, ok := existing.(V); ok {
			return v
		}
		return create()
	}
	v := create()
	if err := registry.Register(v); err != nil {
		return v // detached: the name is taken with other labels or another kind
	}
	registry.vectors[key] = v
	return v
}

// help is the HELP text of the metric Benthos or a plugin named name.
func help(kind, name string) string {
	if text, ok := metricdoc.Help(name); ok {
		return text
	}
	return "The " + kind + " " + name + " (not described)."
}

func (e *exporter) NewCounterCtor(name string, labelKeys ...string) service.MetricsExporterCounterCtor {
	text := help("counter", name)
	name = e.metricName(strings.TrimSuffix(name, "_total") + "_total")
	vec := vector(name, labelKeys, func() *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: text}, labelKeys)
	})
	return func(labelValues ...string) service.MetricsExporterCounter {
		return counter{vec.WithLabelValues(labelValues...)}
	}
}

func (e *exporter) NewTimerCtor(name string, labelKeys ...string) service.MetricsExporterTimerCtor {
	text := help("timer", name)
	name = e.metricName(strings.TrimSuffix(name, "_ns") + "_seconds")
	vec := vector(name, labelKeys, func() *prometheus.HistogramVec {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: text, Buckets: e.buckets}, labelKeys)
	})
	return func(labelValues ...string) service.MetricsExporterTimer {
		return timer{vec.WithLabelValues(labelValues...)}
	}
}

func (e *exporter) NewGaugeCtor(name string, labelKeys ...string) service.MetricsExporterGaugeCtor {
	text := help("gauge", name)
	name = e.metricName(name)
	vec := vector(name, labelKeys, func() *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: text}, labelKeys)
	})
	return func(labelValues ...string) service.MetricsExporterGauge {
		return gauge{vec.WithLabelValues(labelValues...)}
	}
}

// HandlerFunc serves the registry at /metrics of the Benthos HTTP server.
func (e *exporter) HandlerFunc() http.HandlerFunc { return Handler().ServeHTTP }

func (e *exporter) Close(context.Context) error { return nil }

type counter struct{ c prometheus.Counter }

func (c counter) Incr(n int64) { c.c.Add(float64(n)) }

type timer struct{ o prometheus.Observer }

func (t timer) Timing(ns int64) { t.o.Observe(float64(ns) / 1e9) }

type gauge struct{ g prometheus.Gauge }

func (g gauge) Set(v int64) { g.g.Set(float64(v)) }
