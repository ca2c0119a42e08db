package mcp

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCountersAreSummedPerStream(t *testing.T) {
	const text = `# TYPE input_received_total counter
input_received_total{label="",path="root.input",stream="prices"} 10
input_received_total{label="",path="root.input",stream="ohlcv"} 4
# TYPE qiflow_timescale_rows_written_total counter
qiflow_timescale_rows_written_total{label="",path="root.output",stream="prices"} 7
qiflow_timescale_rows_written_total{label="x",path="root.output",stream="prices"} 2
# TYPE output_sent_total counter
output_sent_total{label="",path="root.output"} 3
`
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	require.NoError(t, err)
	got := countersByStream(families)
	assert.Equal(t, 10.0, got["prices"]["input_received_total"])
	assert.Equal(t, 4.0, got["ohlcv"]["input_received_total"])
	assert.Equal(t, 9.0, got["prices"]["qiflow_timescale_rows_written_total"], "summed over the series")
	assert.Equal(t, 3.0, got[""]["output_sent_total"], "run mode: no stream label")
}
