package mcp

import (
	dto "github.com/prometheus/client_model/go"
)

// streamCounters are the counters streams_status reports per stream, by
// their current names on /metrics.
var streamCounters = []string{
	"input_received_total",
	"output_sent_total",
	"output_error_total",
	"qiflow_timescale_rows_written_total",
	"qiflow_timescale_rows_inserted_total",
	"qiflow_timescale_conflicts_skipped_total",
	"qiflow_timescale_rows_dead_lettered_total",
	"qiflow_timescale_retries_total",
	"qiflow_redpanda_input_replayed_total",
}

// streamLabel is the label `streams --watch` puts on each stream's metrics;
// `run --watch` has one stream and no such label.
const streamLabel = "stream"

// countersByStream sums each counter of streamCounters over its series,
// per stream ("" for the unlabelled metrics of run mode).
func countersByStream(families map[string]*dto.MetricFamily) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, name := range streamCounters {
		f, ok := families[name]
		if !ok {
			continue
		}
		for _, m := range f.GetMetric() {
			stream := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == streamLabel {
					stream = l.GetValue()
				}
			}
			if out[stream] == nil {
				out[stream] = map[string]float64{}
			}
			out[stream][name] += sampleValue(m)
		}
	}
	return out
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}
