package main

import (
	"encoding/json"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// undescribed returns the paths of fields in a JSON component spec that have
// no description.
func undescribed(prefix string, fields []any) []string {
	var missing []string
	for _, f := range fields {
		field := f.(map[string]any)
		path := prefix + field["name"].(string)
		if desc, _ := field["description"].(string); desc == "" {
			missing = append(missing, path)
		}
		if children, ok := field["children"].([]any); ok {
			missing = append(missing, undescribed(path+".", children)...)
		}
	}
	return missing
}

// Every qiflow component has a summary and a description on every field,
// so `qiflow list` and the generated docs explain each one.
func TestEveryQiflowComponentFieldIsDescribed(t *testing.T) {
	want := map[string]bool{
		"input/redpanda": true, "input/market_data": true,
		"output/redpanda": true, "output/timescale": true,
		"processor/exchange_router": true,
		"processor/external":        true,
		"metrics/prometheus":        true,
	}
	views := map[string]*service.ConfigView{}
	collect := func(kind string) func(string, *service.ConfigView) {
		return func(name string, view *service.ConfigView) {
			if want[kind+"/"+name] {
				views[kind+"/"+name] = view
			}
		}
	}
	env := service.GlobalEnvironment()
	env.WalkInputs(collect("input"))
	env.WalkOutputs(collect("output"))
	env.WalkProcessors(collect("processor"))
	env.WalkMetrics(collect("metrics"))
	require.Len(t, views, len(want), "every qiflow component is registered in the distribution")

	for name, view := range views {
		raw, err := view.FormatJSON()
		require.NoError(t, err)
		var spec struct {
			Summary string `json:"summary"`
			Config  struct {
				Children []any `json:"children"`
			} `json:"config"`
		}
		require.NoError(t, json.Unmarshal(raw, &spec))
		assert.NotEmpty(t, spec.Summary, name)
		require.NotEmpty(t, spec.Config.Children, name)
		assert.Empty(t, undescribed("", spec.Config.Children), "%s: fields without a description", name)
	}
}
