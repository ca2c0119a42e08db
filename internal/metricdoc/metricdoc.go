// Package metricdoc gives every metric a description. qiflow's plugins
// create their metrics through it, with the text /metrics shows as HELP;
// the prometheus exporter looks the text up by name, and has Benthos's
// own for Benthos's standard metrics.
//
// Names follow one scheme (docs/metrics.md): qiflow's own metrics start
// with qiflow_, the exporter adds _total to counters, and timers, named
// _ns here, become histograms in seconds named _seconds.
package metricdoc

import (
	"sync"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// described holds the descriptions plugins registered, by metric name.
var described sync.Map // string → string

// Counter creates the counter name on m, described by help. A counter
// without labels of its own is served at 0 from the start, so that a
// dashboard's rate() over it has a series before the first event; one with
// labels starts when its creator zeroes the label values it knows.
func Counter(m *service.Metrics, name, help string, labels ...string) *service.MetricCounter {
	described.Store(name, help)
	c := m.NewCounter(name, labels...)
	if len(labels) == 0 {
		c.Incr(0)
	}
	return c
}

// Gauge creates the gauge name on m, described by help.
func Gauge(m *service.Metrics, name, help string, labels ...string) *service.MetricGauge {
	described.Store(name, help)
	return m.NewGauge(name, labels...)
}

// Timer creates the timer name (ending in _ns) on m, described by help.
func Timer(m *service.Metrics, name, help string, labels ...string) *service.MetricTimer {
	described.Store(name, help)
	return m.NewTimer(name, labels...)
}

// Help returns the description of the metric name, as its creator named
// it: a plugin's, or Benthos's for its standard metrics.
func Help(name string) (string, bool) {
	if help, ok := described.Load(name); ok {
		return help.(string), true
	}
	help, ok := benthos[name]
	return help, ok
}

// benthos describes Benthos's standard metrics
// (https://docs.redpanda.com/redpanda-connect/components/metrics/about/).
var benthos = map[string]string{
	"input_received":          "Messages the input received.",
	"input_latency_ns":        "Time from a message's read to its acknowledgement, per input batch.",
	"input_connection_up":     "Times the input connected.",
	"input_connection_failed": "Times the input failed to connect.",
	"input_connection_lost":   "Times the input lost its connection.",

	"processor_received":       "Messages the processor received.",
	"processor_batch_received": "Batches the processor received.",
	"processor_sent":           "Messages the processor sent on.",
	"processor_batch_sent":     "Batches the processor sent on.",
	"processor_error":          "Messages the processor failed.",
	"processor_latency_ns":     "Time the processor took per batch.",

	"output_sent":              "Messages the output wrote.",
	"output_batch_sent":        "Batches the output wrote.",
	"output_error":             "Failed write attempts of the output.",
	"output_rejected":          "Messages the output failed back to the input (which replays them).",
	"output_latency_ns":        "Time the output took per write.",
	"output_connection_up":     "Times the output connected.",
	"output_connection_failed": "Times the output failed to connect.",
	"output_connection_lost":   "Times the output lost its connection.",

	"batch_created": "Batches a batching policy flushed.",

	"buffer_received":       "Messages the buffer received.",
	"buffer_batch_received": "Batches the buffer received.",
	"buffer_sent":           "Messages the buffer sent on.",
	"buffer_batch_sent":     "Batches the buffer sent on.",
	"buffer_latency_ns":     "Time messages spent in the buffer.",

	"cache_success":    "Cache operations that succeeded.",
	"cache_error":      "Cache operations that failed.",
	"cache_not_found":  "Cache reads of a missing key.",
	"cache_latency_ns": "Time a cache operation took.",

	"rate_limit_checked":    "Rate limit checks.",
	"rate_limit_limited":    "Rate limit checks that had to wait.",
	"rate_limit_error":      "Rate limit checks that failed.",
	"rate_limit_latency_ns": "Time a rate limit check took.",
}
