package pluginsdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// processorFunc adapts a function to Processor.
type processorFunc func(ctx context.Context, batch []*Message) error

func (f processorFunc) ProcessBatch(ctx context.Context, batch []*Message) error {
	return f(ctx, batch)
}

func request(payloads ...string) *pluginpb.ProcessBatchRequest {
	req := &pluginpb.ProcessBatchRequest{}
	for i, p := range payloads {
		req.Payloads = append(req.Payloads, []byte(p))
		req.Metadata = append(req.Metadata, pluginpb.AppendMetadata(nil, "kafka_offset", strconv.Itoa(i)))
	}
	return req
}

func decoded(t *testing.T, encoded []byte) map[string]string {
	t.Helper()
	md, err := metadataMap(encoded)
	require.NoError(t, err)
	return md
}

func TestEachMessageAnswersWhatBecameOfIt(t *testing.T) {
	s := &server{impl: processorFunc(func(_ context.Context, batch []*Message) error {
		batch[0].Payload = []byte("changed")
		batch[1].Fail(errors.New("no good"))
		batch[2].Fail(WithCode(errors.New("not JSON"), "invalid_json"))
		batch[3].Drop()
		batch[4].Metadata["added"] = "yes"
		delete(batch[5].Metadata, "kafka_offset")
		batch[6] = nil
		return nil
	})}
	resp, err := s.ProcessBatch(context.Background(), request("a", "b", "c", "d", "e", "f", "g", "h"))
	require.NoError(t, err)
	require.Empty(t, resp.BatchError)
	require.Len(t, resp.Payloads, 8)

	assert.Equal(t, "changed", string(resp.Payloads[0]))
	assert.Equal(t, []uint32{4, 5}, resp.MetadataChanged, "unchanged metadata is not sent back")
	require.Len(t, resp.Metadata, 2)
	assert.Equal(t, map[string]string{"kafka_offset": "4", "added": "yes"}, decoded(t, resp.Metadata[0]))
	assert.Empty(t, decoded(t, resp.Metadata[1]), "a deleted key is a change")
	require.Len(t, resp.Failures, 3)
	assert.Equal(t, &pluginpb.Failure{Index: 1, Error: "no good", Code: "plugin_rejected"}, stripped(resp.Failures[0]))
	assert.Equal(t, &pluginpb.Failure{Index: 2, Error: "not JSON", Code: "invalid_json"}, stripped(resp.Failures[1]))
	assert.Equal(t, &pluginpb.Failure{Index: 6, Error: "the plugin replaced the message with nil", Code: "plugin_contract"}, stripped(resp.Failures[2]))
	assert.Equal(t, []uint32{3}, resp.Dropped)
	assert.Equal(t, "h", string(resp.Payloads[7]), "an untouched message passes unchanged")
}

// stripped copies the fields of a Failure, leaving protobuf's internal
// state behind, so that assert.Equal compares only what was sent.
func stripped(f *pluginpb.Failure) *pluginpb.Failure {
	return &pluginpb.Failure{Index: f.Index, Error: f.Error, Code: f.Code}
}

func TestABatchErrorFailsTheWholeBatchForARetry(t *testing.T) {
	s := &server{impl: processorFunc(func(context.Context, []*Message) error {
		return errors.New("enrichment service down")
	})}
	resp, err := s.ProcessBatch(context.Background(), request("a", "b"))
	require.NoError(t, err)
	assert.Equal(t, "enrichment service down", resp.BatchError)
	assert.Empty(t, resp.Payloads)
}

func TestAPanicFailsOnlyTheMessagesThatCauseIt(t *testing.T) {
	calls := 0
	s := &server{impl: processorFunc(func(_ context.Context, batch []*Message) error {
		calls++
		for _, m := range batch {
			m.Metadata["touched"] = "yes"
			if string(m.Payload) == "boom" {
				panic("boom")
			}
			m.Payload = bytes.ToUpper(m.Payload)
		}
		return nil
	})}
	resp, err := s.ProcessBatch(context.Background(), request("a", "boom", "c"))
	require.NoError(t, err)
	require.Len(t, resp.Payloads, 3)
	assert.Equal(t, 4, calls, "the batch, then each message alone")
	assert.Equal(t, "A", string(resp.Payloads[0]))
	assert.Equal(t, "C", string(resp.Payloads[2]))
	assert.Equal(t, []uint32{0, 2}, resp.MetadataChanged)
	assert.Equal(t, map[string]string{"kafka_offset": "0", "touched": "yes"}, decoded(t, resp.Metadata[0]),
		"the messages are processed again from their original metadata")
	require.Len(t, resp.Failures, 1)
	assert.Equal(t, &pluginpb.Failure{Index: 1, Error: "plugin panicked: boom", Code: "plugin_panic"}, stripped(resp.Failures[0]))
}

// configurable implements Processor, Configurer and HealthChecker.
type configurable struct {
	processorFunc
	health error
	conf   struct {
		Prefix string `json:"prefix"`
	}
}

func (c *configurable) Configure(_ context.Context, config Config) error {
	return config.Decode(&c.conf)
}

func (c *configurable) CheckHealth(context.Context) error { return c.health }

func TestOptionalInterfacesAreUsedWhenImplemented(t *testing.T) {
	plain := &server{impl: processorFunc(func(context.Context, []*Message) error { return nil })}
	conf, err := plain.Configure(context.Background(), &pluginpb.ConfigureRequest{ConfigJson: []byte(`{"any":1}`)})
	require.NoError(t, err)
	assert.Empty(t, conf.Error, "a plugin without Configure accepts any config")
	health, err := plain.CheckHealth(context.Background(), &pluginpb.CheckHealthRequest{})
	require.NoError(t, err)
	assert.Empty(t, health.Error, "a plugin without CheckHealth is healthy while it answers")

	impl := &configurable{health: errors.New("database unreachable")}
	s := &server{impl: impl}
	conf, err = s.Configure(context.Background(), &pluginpb.ConfigureRequest{ConfigJson: []byte(`{"prefix":"x"}`)})
	require.NoError(t, err)
	assert.Empty(t, conf.Error)
	assert.Equal(t, "x", impl.conf.Prefix)
	conf, err = s.Configure(context.Background(), &pluginpb.ConfigureRequest{ConfigJson: []byte(`{"prefx":"x"}`)})
	require.NoError(t, err)
	assert.Contains(t, conf.Error, `unknown field "prefx"`)
	health, err = s.CheckHealth(context.Background(), &pluginpb.CheckHealthRequest{})
	require.NoError(t, err)
	assert.Equal(t, "database unreachable", health.Error)
}

func TestLogRecordsAreWrittenInTheLayoutQiflowReads(t *testing.T) {
	var buf bytes.Buffer
	h := newLogHandler(&buf)
	require.NoError(t, h.Handle(context.Background(), record("configured", "mappings", 2)))
	line := buf.String()
	assert.Contains(t, line, `"@level":"warn"`)
	assert.Contains(t, line, `"@message":"configured"`)
	assert.Contains(t, line, `"@timestamp":"`)
	assert.Contains(t, line, `"mappings":2`)
}

// A plugin whose qiflow died, even of SIGKILL, exits by itself: here its
// parent is a shell that exits at once.
func TestAPluginExitsWhenItsParentIsGone(t *testing.T) {
	bin := testenv.BuildBinary(t, "./examples/plugins/noop")
	stderr := filepath.Join(t.TempDir(), "stderr")
	cmd := exec.Command("sh", "-c", `QIFLOW_PLUGIN_HOST_PID=$$ "$0" >/dev/null 2>"$1" & echo $!`, bin, stderr)
	cmd.Env = append(os.Environ(), pluginpb.Handshake.MagicCookieKey+"="+pluginpb.Handshake.MagicCookieValue)
	out, err := cmd.Output()
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	require.NoError(t, err, "%s", out)

	require.Eventually(t, func() bool { return !alive(pid) }, 10*time.Second, 20*time.Millisecond, "the orphaned plugin exits")
	logged, err := os.ReadFile(stderr)
	require.NoError(t, err)
	assert.Contains(t, string(logged), "qiflow is gone; the plugin exits", "it exited because its parent was gone")
}

// qiflow holds the write end of a pipe whose read end the plugin gets;
// EOF on it tells the plugin that qiflow is gone, whoever its parent is.
func TestAPluginExitsWhenQiflowsPipeCloses(t *testing.T) {
	bin := testenv.BuildBinary(t, "./examples/plugins/noop")
	pluginEnd, qiflowEnd, err := os.Pipe()
	require.NoError(t, err)
	defer qiflowEnd.Close()
	var stderr bytes.Buffer
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), pluginpb.Handshake.MagicCookieKey+"="+pluginpb.Handshake.MagicCookieValue,
		"PLUGIN_PROTOCOL_VERSIONS=1", pluginpb.HostPIDEnv+"="+strconv.Itoa(os.Getpid()), pluginpb.ParentFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{pluginEnd}
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	require.NoError(t, pluginEnd.Close())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	require.NoError(t, qiflowEnd.Close(), "qiflow is gone")
	select {
	case err := <-exited:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("the plugin still runs after its pipe closed")
	}
	assert.Contains(t, stderr.String(), "qiflow is gone; the plugin exits")
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

func record(msg string, args ...any) slog.Record {
	r := slog.NewRecord(time.Now(), slog.LevelWarn, msg, 0)
	r.Add(args...)
	return r
}
