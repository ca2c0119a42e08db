package external

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// testPlugins are the plugins the tests run, by name, and their packages.
var testPlugins = map[string]string{
	"testplugin":        "./plugins/external/testdata/testplugin",
	"otherversion":      "./plugins/external/testdata/otherversion",
	"symbol_normalizer": "./examples/plugins/symbol_normalizer",
}

// pluginDir builds the named plugins (once per test process) into a fresh
// plugin directory, as qiflow-plugin-<name>.
func pluginDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		bin := testenv.BuildBinary(t, testPlugins[name])
		require.NoError(t, os.Symlink(bin, filepath.Join(dir, PluginPrefix+name)))
	}
	return dir
}

// logBuffer is a Benthos logger whose lines a test can read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) logger() *service.Logger {
	return service.NewLoggerFromSlog(slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})))
}

// newTestProcessor builds the processor from YAML, as a pipeline would,
// and closes it when the test ends.
func newTestProcessor(t *testing.T, yaml string) (*processor, *logBuffer) {
	t.Helper()
	conf, err := processorSpec().ParseYAML(yaml, nil)
	require.NoError(t, err)
	c, err := configFromParsed(conf)
	require.NoError(t, err)
	logs := new(logBuffer)
	p, err := newProcessor(c, logs.logger(), newMetrics(service.MockResources().Metrics()))
	require.NoError(t, err, "logs:\n%s", logs)
	t.Cleanup(func() { require.NoError(t, p.Close(context.Background())) })
	return p, logs
}

func batchOf(payloads ...string) service.MessageBatch {
	batch := make(service.MessageBatch, len(payloads))
	for i, p := range payloads {
		batch[i] = service.NewMessage([]byte(p))
		batch[i].MetaSetMut("kafka_topic", "in")
		batch[i].MetaSetMut("kafka_partition", "0")
		batch[i].MetaSetMut("kafka_offset", fmt.Sprint(i))
	}
	return batch
}

func process(t *testing.T, p *processor, batch service.MessageBatch) service.MessageBatch {
	t.Helper()
	out, err := p.ProcessBatch(context.Background(), batch)
	require.NoError(t, err)
	require.Len(t, out, 1)
	return out[0]
}

func TestPluginIsFoundByNameInThePluginDirectoryOrByPath(t *testing.T) {
	dir := pluginDir(t, "testplugin")
	notExecutable := filepath.Join(dir, PluginPrefix+"plain")
	require.NoError(t, os.WriteFile(notExecutable, []byte("#!/bin/sh\n"), 0o644))
	require.NoError(t, os.Mkdir(filepath.Join(dir, PluginPrefix+"folder"), 0o755))

	cases := []struct {
		name, dirEnv, plugin string
		wantName, wantErr    string
	}{
		{name: "by name", dirEnv: dir, plugin: "testplugin", wantName: "testplugin"},
		{name: "by path", plugin: filepath.Join(dir, PluginPrefix+"testplugin"), wantName: "testplugin"},
		{name: "missing", dirEnv: dir, plugin: "nope",
			wantErr: `plugin "nope" not found: no file ` + filepath.Join(dir, PluginPrefix+"nope") + ` (plugins are looked up by name as qiflow-plugin-<name> in QIFLOW_PLUGIN_DIR="` + dir + `")`},
		{name: "missing from the default directory", plugin: "nope",
			wantErr: "(plugins are looked up by name as qiflow-plugin-<name> in ./plugins.d; set QIFLOW_PLUGIN_DIR to look elsewhere)"},
		{name: "missing path", plugin: "./bin/nope", wantErr: `plugin "./bin/nope" not found: no file `},
		{name: "not executable", dirEnv: dir, plugin: "plain", wantErr: "is not executable (mode -rw-r--r--); chmod +x it"},
		{name: "a directory", dirEnv: dir, plugin: "folder", wantErr: "is a directory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvPluginDir, c.dirEnv)
			path, name, err := resolvePlugin(c.plugin)
			if c.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.wantName, name)
			assert.True(t, filepath.IsAbs(path), path)
		})
	}
}

// Every field has a description, as cmd/qiflow's spec test demands of the
// distribution's components.
func TestEveryFieldIsDescribed(t *testing.T) {
	var view *service.ConfigView
	service.GlobalEnvironment().WalkProcessors(func(name string, v *service.ConfigView) {
		if name == "external" {
			view = v
		}
	})
	require.NotNil(t, view, "the external processor is registered")
	doc, err := view.FormatJSON()
	require.NoError(t, err)
	var spec struct {
		Summary string `json:"summary"`
		Config  struct {
			Children []map[string]any `json:"children"`
		} `json:"config"`
	}
	require.NoError(t, json.Unmarshal(doc, &spec))
	assert.NotEmpty(t, spec.Summary)
	var walk func(prefix string, fields []map[string]any)
	walk = func(prefix string, fields []map[string]any) {
		for _, f := range fields {
			path := prefix + f["name"].(string)
			desc, _ := f["description"].(string)
			assert.NotEmpty(t, desc, "field %s has no description", path)
			if children, ok := f["children"].([]any); ok {
				var cs []map[string]any
				for _, c := range children {
					cs = append(cs, c.(map[string]any))
				}
				walk(path+".", cs)
			}
		}
	}
	require.NotEmpty(t, spec.Config.Children)
	walk("", spec.Config.Children)
}

func TestResultsAreAppliedAndRejectedMessagesCarryBusinessErrors(t *testing.T) {
	dir := pluginDir(t, "testplugin")
	p, _ := newTestProcessor(t, fmt.Sprintf(`
plugin: %s
config:
  fail_containing: bad
`, filepath.Join(dir, PluginPrefix+"testplugin")))

	out := process(t, p, batchOf("one", "bad two", "three"))
	require.Len(t, out, 3)
	for i, want := range []string{"processed:one", "bad two", "processed:three"} {
		got, err := out[i].AsBytes()
		require.NoError(t, err)
		assert.Equal(t, want, string(got), "message %d", i)
	}
	assert.NoError(t, out[0].GetError())
	pid, ok := out[0].MetaGet("plugin_pid")
	assert.True(t, ok && pid != "", "metadata the plugin set is applied")
	topic, _ := out[0].MetaGet("kafka_topic")
	assert.Equal(t, "in", topic, "metadata the plugin kept stays")

	failed := out[1]
	require.Error(t, failed.GetError())
	assert.Contains(t, failed.GetError().Error(), `BUSINESS test_rejected`)
	assert.Contains(t, failed.GetError().Error(), `payload contains "bad"`)
	for key, want := range map[string]string{
		result.HeaderErrorCategory: "BUSINESS", result.HeaderErrorCode: "test_rejected",
		result.HeaderSourceTopic: "in", result.HeaderSourcePartition: "0", result.HeaderSourceOffset: "1",
	} {
		got, _ := failed.MetaGet(key)
		assert.Equal(t, want, got, key)
	}
	_, hasPID := failed.MetaGet("plugin_pid")
	assert.False(t, hasPID, "a failed message keeps its original metadata")
}

func TestAConfigThePluginRejectsStopsThePipelineFromStarting(t *testing.T) {
	dir := pluginDir(t, "testplugin")
	for name, tc := range map[string]struct{ config, want string }{
		"rejected by Configure": {"reject_config: true", "plugin testplugin rejected its config: reject_config is set"},
		"unknown key":           {"crash_on_batc: 3", `unknown field "crash_on_batc"`},
	} {
		t.Run(name, func(t *testing.T) {
			conf, err := processorSpec().ParseYAML(fmt.Sprintf("plugin: %s\nconfig:\n  %s\n", filepath.Join(dir, PluginPrefix+"testplugin"), tc.config), nil)
			require.NoError(t, err)
			c, err := configFromParsed(conf)
			require.NoError(t, err)
			_, err = newProcessor(c, service.MockResources().Logger(), newMetrics(service.MockResources().Metrics()))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestAPluginThatFailsItsHealthCheckIsRestarted(t *testing.T) {
	dir := pluginDir(t, "testplugin")
	p, logs := newTestProcessor(t, fmt.Sprintf(`
plugin: %s
health_interval: 20ms
backoff: { initial_interval: 10ms }
config:
  unhealthy_on_check: 2
  marker_dir: %s
`, filepath.Join(dir, PluginPrefix+"testplugin"), t.TempDir()))

	first := startedPID(t, p)
	require.Eventually(t, func() bool { return strings.Contains(logs.String(), "Restarted plugin testplugin") }, 20*time.Second, 10*time.Millisecond)
	assert.Contains(t, logs.String(), "reported itself unhealthy: unhealthy as told")

	out := process(t, p, batchOf("x"))
	pid, _ := out[0].MetaGet("plugin_pid")
	assert.NotEqual(t, fmt.Sprint(first), pid, "the batch ran on the new process")
	assert.NoError(t, out[0].GetError())
	assert.False(t, processAlive(first), "the unhealthy process is gone")
}

func TestCloseStopsThePluginProcess(t *testing.T) {
	dir := pluginDir(t, "testplugin")
	conf, err := processorSpec().ParseYAML("plugin: testplugin", nil)
	require.NoError(t, err)
	t.Setenv(EnvPluginDir, dir)
	c, err := configFromParsed(conf)
	require.NoError(t, err)
	p, err := newProcessor(c, service.MockResources().Logger(), newMetrics(service.MockResources().Metrics()))
	require.NoError(t, err)
	pid := startedPID(t, p)
	require.True(t, processAlive(pid))
	require.NoError(t, p.Close(context.Background()))
	assert.False(t, processAlive(pid))

	out := process(t, p, batchOf("late"))
	require.Error(t, out[0].GetError(), "a batch after Close is failed, not dropped")
	assert.Contains(t, out[0].GetError().Error(), "SYSTEM plugin_stopped")
}

// startedPID sends p a batch, which starts the plugin, and returns the PID
// of the process that answered it.
func startedPID(t *testing.T, p *processor) int {
	t.Helper()
	out := process(t, p, batchOf("start"))
	require.NoError(t, out[0].GetError())
	pid, _ := out[0].MetaGet("plugin_pid")
	n, err := strconv.Atoi(pid)
	require.NoError(t, err, "plugin_pid %q", pid)
	return n
}

// processAlive reports whether pid runs and is not a zombie.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func TestPluginsInheritOnlyAnAllowlistOfVariablesPlusTheirEnvField(t *testing.T) {
	env := pluginEnv([]string{
		"PATH=/bin", "HOME=/home/q", "TMPDIR=/tmp", "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C", "SSL_CERT_FILE=/ca.pem", "SSL_CERT_DIR=/ca",
		"DATABASE_URL=postgres://u:secret@db/q", "REDPANDA_PASSWORD=secret", "PGPASSWORD=secret", "PGPASSFILE=/p", "PGSERVICEFILE=/s",
		"AWS_SECRET_ACCESS_KEY=secret", "QIFLOW_DATABASE_PASSWORD_FILE=/run/secrets/db", "QIFLOW_ENV=production", "ENRICHER_TOKEN=mine",
	}, map[string]string{"ENRICHER_TOKEN": "given", "TZ": "Europe/Paris"})
	assert.Equal(t, []string{
		"PATH=/bin", "HOME=/home/q", "TMPDIR=/tmp", "LANG=C.UTF-8", "LC_ALL=C", "SSL_CERT_FILE=/ca.pem", "SSL_CERT_DIR=/ca",
		"ENRICHER_TOKEN=given", "TZ=Europe/Paris",
	}, env)
}

func TestAPluginProcessSeesNoneOfQiflowsCredentialsButItsEnvField(t *testing.T) {
	t.Setenv("PGPASSWORD", "secret")
	t.Setenv("DATABASE_URL", "postgres://u:secret@db/q")
	dir := pluginDir(t, "testplugin")
	p, _ := newTestProcessor(t, fmt.Sprintf(`
plugin: %s
env: { ENRICHER_TOKEN: given }
config:
  env_keys: [ PGPASSWORD, DATABASE_URL, ENRICHER_TOKEN, PATH ]
`, filepath.Join(dir, PluginPrefix+"testplugin")))
	out := process(t, p, batchOf("x"))
	require.NoError(t, out[0].GetError())
	var seen []string
	_ = out[0].MetaWalk(func(k, v string) error {
		if name, ok := strings.CutPrefix(k, "env:"); ok {
			seen = append(seen, name)
		}
		return nil
	})
	assert.ElementsMatch(t, []string{"ENRICHER_TOKEN", "PATH"}, seen)
	token, _ := out[0].MetaGet("env:ENRICHER_TOKEN")
	assert.Equal(t, "given", token)
}

// wrapperPlugin writes a shell script that runs the test plugin without
// exec, so that the plugin is not qiflow's child, after starting a sleep
// that holds the plugin's standard output and error and records its PID
// in the returned file.
func wrapperPlugin(t *testing.T) (path, sleepers string) {
	t.Helper()
	bin := filepath.Join(pluginDir(t, "testplugin"), PluginPrefix+"testplugin")
	dir := t.TempDir()
	sleepers = filepath.Join(dir, "sleepers")
	path = filepath.Join(dir, PluginPrefix+"wrapped")
	script := fmt.Sprintf("#!/bin/sh\nsleep 3600 &\necho $! >>%q\n%q\n", sleepers, bin)
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))
	return path, sleepers
}

// pids reads the PIDs listed in file, one a line.
func pids(t *testing.T, file string) []int {
	t.Helper()
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	var out []int
	for _, f := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		out = append(out, pid)
	}
	return out
}

// withinAMinute runs f and fails the test if it has not returned after a
// minute: the bound only tells a hang from slowness.
func withinAMinute(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s hangs", what)
	}
}

func TestAPluginUnderAWrapperThatLeftAChildHoldingItsOutputIsRestartedAndLeavesNoProcess(t *testing.T) {
	path, sleepers := wrapperPlugin(t)
	p, logs := newTestProcessor(t, fmt.Sprintf(`
plugin: %s
backoff: { initial_interval: 10ms }
config:
  crash_on_batch: 1
  marker_dir: %s
`, path, t.TempDir()))

	var out service.MessageBatch
	withinAMinute(t, "a batch whose plugin crashed", func() { out = process(t, p, batchOf("x")) })
	require.NoError(t, out[0].GetError(), "logs:\n%s", logs)
	got, _ := out[0].AsBytes()
	assert.Equal(t, "processed:x", string(got), "the restarted plugin processed the batch")
	assert.Contains(t, logs.String(), "crashed or broke its connection during a batch")

	withinAMinute(t, "Close", func() { require.NoError(t, p.Close(context.Background())) })
	left := pids(t, sleepers)
	require.Len(t, left, 3, "three wrappers ran: the check at construction, the crashed process and its restart")
	for _, pid := range left {
		assert.Eventually(t, func() bool { return !processAlive(pid) }, 10*time.Second, 20*time.Millisecond,
			"the wrapper's child %d was killed with the plugin's process group", pid)
	}
}

func TestCloseKillsAStoppedPluginWhenItsContextEnds(t *testing.T) {
	dir := pluginDir(t, "testplugin")
	p, _ := newTestProcessor(t, "plugin: "+filepath.Join(dir, PluginPrefix+"testplugin"))
	pid := startedPID(t, p)
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	withinAMinute(t, "Close", func() { require.NoError(t, p.Close(ctx)) })
	assert.Eventually(t, func() bool { return !processAlive(pid) }, 10*time.Second, 20*time.Millisecond, "the stopped plugin was killed")
}

func TestBuildingTheProcessorLeavesNoPluginProcessUntilTheFirstBatch(t *testing.T) {
	path, sleepers := wrapperPlugin(t)
	p, _ := newTestProcessor(t, "plugin: "+path)
	checked := pids(t, sleepers)
	require.Len(t, checked, 1, "the plugin ran once, to check it starts and takes its config")
	assert.Eventually(t, func() bool { return !processAlive(checked[0]) }, 10*time.Second, 20*time.Millisecond,
		"the check's process group is gone")
	assert.Empty(t, children(os.Getpid()), "no plugin runs before the first batch")

	startedPID(t, p)
	assert.Len(t, pids(t, sleepers), 2, "the first batch started the plugin")
}

func TestDroppedMessagesLeaveAndAFailedBatchIsRetried(t *testing.T) {
	dir := pluginDir(t, "testplugin")
	p, logs := newTestProcessor(t, fmt.Sprintf(`
plugin: %s
config:
  drop_containing: heartbeat
  fail_batch_containing: later
`, filepath.Join(dir, PluginPrefix+"testplugin")))

	out := process(t, p, batchOf("a", "heartbeat", "b"))
	require.Len(t, out, 2)
	for i, want := range []string{"processed:a", "processed:b"} {
		got, _ := out[i].AsBytes()
		assert.Equal(t, want, string(got))
	}

	all, err := p.ProcessBatch(context.Background(), batchOf("heartbeat"))
	require.NoError(t, err)
	assert.Empty(t, all, "a batch the plugin drops entirely is done")

	out = process(t, p, batchOf("x", "try later"))
	require.Len(t, out, 2)
	for _, m := range out {
		require.Error(t, m.GetError())
		assert.Contains(t, m.GetError().Error(), "EXTERNAL plugin_batch_error: plugin testplugin failed the batch: the batch holds later")
		category, _ := m.MetaGet(result.HeaderErrorCategory)
		assert.Equal(t, "EXTERNAL", category, "a transient error: reject_errored nacks it")
	}
	assert.Contains(t, logs.String(), "Plugin testplugin failed a batch of 2 messages, which the input retries")
}
