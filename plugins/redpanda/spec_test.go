package redpanda

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

func TestEveryFieldIsDescribed(t *testing.T) {
	env := service.GlobalEnvironment()
	specs := map[string]*service.ConfigView{}
	env.WalkInputs(func(name string, view *service.ConfigView) {
		if name == "redpanda" {
			specs["input"] = view
		}
	})
	env.WalkOutputs(func(name string, view *service.ConfigView) {
		if name == "redpanda" {
			specs["output"] = view
		}
	})
	require.Len(t, specs, 2, "the redpanda input and output are registered")
	for kind, view := range specs {
		raw, err := view.FormatJSON()
		require.NoError(t, err)
		var spec struct {
			Summary string `json:"summary"`
			Config  struct {
				Children []any `json:"children"`
			} `json:"config"`
		}
		require.NoError(t, json.Unmarshal(raw, &spec))
		assert.NotEmpty(t, spec.Summary, kind)
		require.NotEmpty(t, spec.Config.Children, kind)
		assert.Empty(t, undescribed("", spec.Config.Children), "%s fields without a description", kind)
	}
}
