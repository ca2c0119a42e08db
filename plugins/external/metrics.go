package external

import (
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/metricdoc"
)

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
		calls:         metricdoc.Counter(m, "qiflow_external_plugin_calls", "Batches sent to the plugin, retries included.", "plugin"),
		callErrors:    metricdoc.Counter(m, "qiflow_external_plugin_call_errors", "Calls and health checks lost to a crash, a hang or a failed check.", "plugin"),
		latency:       metricdoc.Timer(m, "qiflow_external_plugin_call_latency_ns", "Time per call to the plugin.", "plugin"),
		restarts:      metricdoc.Counter(m, "qiflow_external_plugin_restarts", "Restarts of the plugin's process, successful or not.", "plugin"),
		failures:      metricdoc.Counter(m, "qiflow_external_plugin_failures", "Times the plugin's restart budget ran out.", "plugin"),
		messageErrors: metricdoc.Counter(m, "qiflow_external_plugin_message_errors", "Messages the plugin failed (BUSINESS), sent to the dead-letter path.", "plugin"),
	}
}

// zero serves each counter of plugin at 0 before its first event, so that
// a dashboard's rate() over it has a series from the start.
func (m metrics) zero(plugin string) {
	for _, c := range []*service.MetricCounter{m.calls, m.callErrors, m.restarts, m.failures, m.messageErrors} {
		c.Incr(0, plugin)
	}
}
