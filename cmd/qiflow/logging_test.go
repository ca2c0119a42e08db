package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// jsonLogPipeline generates three messages and logs each through a log
// processor, with logger.format json; its HTTP server is off for plain
// `qiflow run`, and the supervisor's is given by flag.
const jsonLogPipeline = `http:
  enabled: false
logger:
  level: INFO
  format: json
input:
  generate:
    count: 3
    interval: 1ms
    mapping: 'root = {"n": counter()}'
pipeline:
  processors:
    - log:
        level: INFO
        message: row
        fields_mapping: 'root.n = this.n'
output:
  drop: {}
`

// jsonLines parses every line of out as one JSON object, failing the test
// on a line that is not, and checks the keys every Benthos log line has.
func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var entry map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &entry), "not a JSON log line: %q\nin:\n%s", line, out)
		for _, key := range []string{"level", "msg", "time", "@service"} {
			assert.Contains(t, entry, key, "%q", line)
		}
		_, err := time.Parse(time.RFC3339, fmt.Sprint(entry["time"]))
		assert.NoError(t, err, "time as plain qiflow run writes it: %q", line)
		assert.False(t, strings.HasSuffix(fmt.Sprint(entry["msg"]), "\n"), "a message ends without a newline, as plain run trims it: %q", line)
		assert.Contains(t, []string{"trace", "debug", "info", "warning", "error"}, entry["level"], "logrus's level names: %q", line)
		lines = append(lines, entry)
	}
	return lines
}

// keysOf returns the sorted keys of the first line whose msg is msg.
func keysOf(t *testing.T, lines []map[string]any, msg string) []string {
	t.Helper()
	for _, l := range lines {
		if l["msg"] == msg {
			var keys []string
			for k := range l {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			return keys
		}
	}
	t.Fatalf("no log line %q in %v", msg, lines)
	return nil
}

func TestRunWatchLogsJSONWithTheKeysOfPlainRun(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	file := writeConfig(t, jsonLogPipeline)

	var plainOut, plainErr bytes.Buffer
	plain := exec.Command(bin, "run", file)
	plain.Stdout, plain.Stderr = &plainOut, &plainErr
	require.NoError(t, plain.Run(), "%s%s", plainOut.String(), plainErr.String())
	plainLines := jsonLines(t, plainOut.String())

	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var watchOut, watchErr bytes.Buffer
	watch := exec.Command(bin, "run", "--watch", "--http-address", addr, file)
	watch.Stdout, watch.Stderr = &watchOut, &watchErr
	require.NoError(t, watch.Run(), "%s%s", watchOut.String(), watchErr.String())
	assert.Empty(t, watchErr.String())
	watchLines := jsonLines(t, watchOut.String())

	// The supervisor's own lines and the stream's come out alike.
	for _, msg := range []string{"Serving /ping, /ready, /metrics, /reload and /reloads", "Reload applied", "Stream finished its input"} {
		keysOf(t, watchLines, msg)
	}
	for _, msg := range []string{"Input type generate is now active", "Output type drop is now active", "row"} {
		assert.Equal(t, keysOf(t, plainLines, msg), keysOf(t, watchLines, msg), "the keys of %q, as plain run writes them", msg)
	}
	for _, l := range watchLines {
		assert.Equal(t, "benthos", l["@service"], "logger.static_fields' default")
	}
}

func TestStreamsWatchLogsJSONWithTheFlag(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	dir := t.TempDir()
	file := writeConfig(t, generator("a", dir+"/out.txt"))
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p := testenv.StartProcess(t, bin, nil, "streams", "--watch", "--log.format", "json", "--log.level", "debug", "--http-address", addr, file)
	p.WaitForOutput(t, `"msg":"Reload applied"`, 20*time.Second)
	require.NoError(t, p.Signal(syscall.SIGTERM))
	code, err := p.Wait(20 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "%s", p.Output())
	lines := jsonLines(t, p.Output()) // stdout and stderr: nothing that is not JSON
	var debug bool
	for _, l := range lines {
		debug = debug || l["level"] == "debug"
		if l["msg"] == "Input type generate is now active" {
			assert.Equal(t, "pipeline", l["stream"], "streams name the stream of a line")
		}
	}
	assert.True(t, debug, "--log.level debug")
}
