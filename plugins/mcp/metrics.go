package mcp

import (
	dto "github.com/prometheus/client_model/go"
)

// streamCounters are the counters streams_status reports per stream, by
// their current names on /metrics.
var streamCounters = []string{
	"input_received",
	"output_sent",
	"output_error",
	"timescale_rows_written",
	"timescale_rows_inserted",
	"timescale_conflicts_skipped",
	"timescale_rows_dead_lettered",
	"timescale_retries",
	"redpanda_input_replayed",
}

// family finds a metric by its name, or by the names issue 16 may give it
// (a _total suffix, a qiflow_ prefix), so that a rename does not blind the
// tools.
func family(families map[string]*dto.MetricFamily, name string) *dto.MetricFamily {
	for _, n := range []string{name, name + "_total", "qiflow_" + name, "qiflow_" + name + "_total"} {
		if f, ok := families[n]; ok {
			return f
		}
	}
	return nil
}

// streamLabel is the label `streams --watch` puts on each stream's metrics;
// `run --watch` has one stream and no such label.
const streamLabel = "stream"

// countersByStream sums each counter of streamCounters over its series,
// per stream ("" for the unlabelled metrics of run mode).
func countersByStream(families map[string]*dto.MetricFamily) map[string]map[string]float64 {
	out := map[string]map[string]float64{}
	for _, name := range streamCounters {
		f := family(families, name)
		if f == nil {
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
