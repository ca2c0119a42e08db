package devcmd_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/plugins/devcmd"
)

// TestDevLogsAsRunDoes runs `qiflow dev --log-format json --log-level
// info`: every log line is JSON with the keys of `qiflow run`.
func TestDevLogsAsRunDoes(t *testing.T) {
	var out, logs syncBuffer
	app := &cli.App{Name: "qiflow", Commands: []*cli.Command{devcmd.CLICommand()}, Writer: &out, ErrWriter: &logs}
	done := make(chan error, 1)
	go func() {
		done <- app.Run([]string{"qiflow", "dev", "--pipelines", "../../pipelines", "--duration", "4s", "--interval", "2s", "--log-format", "json", "--log-level", "info"})
	}()
	select {
	case err := <-done:
		require.NoError(t, err, "output:\n%s\nlog:\n%s", &out, &logs)
	case <-time.After(time.Minute):
		t.Fatalf("qiflow dev did not stop; output:\n%s", &out)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	require.NotEmpty(t, lines)
	var sawComponent bool
	for _, line := range lines {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), "not a JSON log line: %q", line)
		for _, key := range []string{"level", "msg", "time", "@service", "pipeline"} {
			assert.Contains(t, entry, key, "%q", line)
		}
		if _, ok := entry["path"]; ok {
			sawComponent = true
			assert.Contains(t, entry, "label", "%q", line)
		}
	}
	assert.True(t, sawComponent, "component lines carry path and label:\n%s", &logs)
}
