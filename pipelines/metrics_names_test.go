package pipelines_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// families reads the process's /metrics.
func (p qiflowProcess) families(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "/metrics is in the Prometheus text format")
	return families
}

// benthosMetricPrefixes are the components whose standard metrics Benthos
// names; the rest of what /metrics serves is qiflow's, the Go runtime's or
// the process's.
var benthosMetricPrefixes = []string{"input_", "output_", "processor_", "batch_", "buffer_", "cache_", "rate_limit_"}

// assertMetricsFollowTheNamingScheme checks what a dashboard builder relies
// on (docs/metrics.md): every counter ends in _total, every timer is a
// histogram in seconds, every metric is described, and qiflow's own carry
// the qiflow_ prefix.
func assertMetricsFollowTheNamingScheme(t *testing.T, p qiflowProcess) {
	t.Helper()
	families := p.families(t)
	require.NotEmpty(t, families)
	doc, err := os.ReadFile("../docs/metrics.md")
	require.NoError(t, err)
	for name, f := range families {
		if strings.HasPrefix(name, "qiflow_") {
			assert.Contains(t, string(doc), "`"+name+"`", "docs/metrics.md lists %s", name)
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			assert.True(t, strings.HasSuffix(name, "_total"), "counter %s ends in _total", name)
		case dto.MetricType_HISTOGRAM:
			assert.True(t, strings.HasSuffix(name, "_seconds"), "histogram %s is in seconds", name)
		}
		assert.NotEmpty(t, f.GetHelp(), "%s has HELP", name)
		assert.NotContains(t, f.GetHelp(), "not described", "%s is described", name)
		own := strings.HasPrefix(name, "qiflow_") || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "promhttp_")
		for _, prefix := range benthosMetricPrefixes {
			own = own || strings.HasPrefix(name, prefix)
		}
		assert.True(t, own, "%s is Benthos's, the runtime's, or starts with qiflow_", name)
	}
}
