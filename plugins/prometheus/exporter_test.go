package prometheus

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetricsAreServedInPrometheusTextFormat(t *testing.T) {
	conf, err := spec().ParseYAML("prefix: qiflow\nadd_process_metrics: false", nil)
	require.NoError(t, err)
	e, err := newExporterFromConfig(conf)
	require.NoError(t, err)

	e.NewCounterCtor("timescale_rows_written")().Incr(993)
	e.NewCounterCtor("timescale_rows_written")().Incr(7) // the same metric, asked for twice
	e.NewCounterCtor("input_received", "path")("root.input").Incr(5)
	e.NewTimerCtor("timescale_end_to_end_latency_ns")().Timing(12_000_000)
	e.NewGaugeCtor("bad.name-here")().Set(3)

	rec := httptest.NewRecorder()
	e.HandlerFunc()(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	require.NoError(t, err, "the body parses as Prometheus text:\n%s", rec.Body)

	assert.Equal(t, 1000.0, families["qiflow_timescale_rows_written_total"].GetMetric()[0].GetCounter().GetValue(), "counters end in _total")
	assert.Equal(t, "root.input", families["qiflow_input_received_total"].GetMetric()[0].GetLabel()[0].GetValue())
	assert.Equal(t, "Messages the input received.", families["qiflow_input_received_total"].GetHelp(), "Benthos's metrics are described")
	latency := families["qiflow_timescale_end_to_end_latency_seconds"].GetMetric()[0].GetHistogram()
	assert.Equal(t, uint64(1), latency.GetSampleCount())
	assert.InDelta(t, 0.012, latency.GetSampleSum(), 1e-9, "timers are histograms in seconds")
	assert.Equal(t, 3.0, families["qiflow_bad_name_here"].GetMetric()[0].GetGauge().GetValue())
	assert.Contains(t, families, "go_goroutines")
}

func TestDefaultConfigIsValid(t *testing.T) {
	conf, err := spec().ParseYAML("{}", nil)
	require.NoError(t, err)
	_, err = newExporterFromConfig(conf)
	require.NoError(t, err)
}

func TestAMetricReusedWithOtherLabelsNeitherPanicsNorBreaksTheEndpoint(t *testing.T) {
	conf, err := spec().ParseYAML("prefix: relabel\nadd_process_metrics: false\nadd_go_metrics: false", nil)
	require.NoError(t, err)
	before, err := newExporterFromConfig(conf)
	require.NoError(t, err)
	after, err := newExporterFromConfig(conf) // the same stream after a reload that adds a label
	require.NoError(t, err)

	before.NewCounterCtor("input_received", "label", "path")("", "root.input").Incr(2)
	assert.NotPanics(t, func() {
		after.NewCounterCtor("input_received", "label", "path", "stream")("", "root.input", "prices").Incr(3)
		after.NewTimerCtor("input_received")().Timing(1) // and as another kind
	})
	before.NewCounterCtor("input_received", "label", "path")("", "root.input").Incr(1)

	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	require.NoError(t, err, "%s", rec.Body)
	require.Len(t, families["relabel_input_received_total"].GetMetric(), 1)
	assert.Equal(t, 3.0, families["relabel_input_received_total"].GetMetric()[0].GetCounter().GetValue(), "the first definition keeps counting")
}
