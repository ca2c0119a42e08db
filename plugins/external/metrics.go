package external

import "github.com/redpanda-data/benthos/v4/public/service"

// metrics are the processor's own, each labelled with the plugin's name.
type metrics struct {
	calls         *service.MetricCounter // batches sent to the plugin, retries included
	callErrors    *service.MetricCounter // calls and health checks lost to a crash, a hang or a failed check
	latency       *service.MetricTimer   // time per call
	restarts      *service.MetricCounter // restarts, successful or not
	failures      *service.MetricCounter // times the restart budget ran out
	messageErrors *service.MetricCounter // messages the plugin failed (BUSINESS)
}

func newMetrics(m *service.Metrics) metrics {
	return metrics{
		calls:         m.NewCounter("external_plugin_calls", "plugin"),
		callErrors:    m.NewCounter("external_plugin_call_errors", "plugin"),
		latency:       m.NewTimer("external_plugin_call_latency_ns", "plugin"),
		restarts:      m.NewCounter("external_plugin_restarts", "plugin"),
		failures:      m.NewCounter("external_plugin_failures", "plugin"),
		messageErrors: m.NewCounter("external_plugin_message_errors", "plugin"),
	}
}
