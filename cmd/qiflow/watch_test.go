package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// watchedQiflow is `qiflow run|streams --watch` with its HTTP address.
type watchedQiflow struct {
	*testenv.Process
	addr string
}

func startWatch(t *testing.T, command string, targets ...string) watchedQiflow {
	t.Helper()
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	args := append([]string{command, "--watch", "--http-address", addr, "--watch-debounce", "50ms", "--reload-start-timeout", "2s"}, targets...)
	w := watchedQiflow{testenv.StartProcess(t, bin, nil, args...), addr}
	require.Eventually(t, func() bool { return len(w.reloads(t)) > 0 }, 20*time.Second, 20*time.Millisecond,
		"qiflow did not start:\n%s", w.Output())
	return w
}

type reload struct {
	Seq        int
	Trigger    string
	Stream     string
	Result     string
	Reason     string
	Generation int
}

func (w watchedQiflow) get(t *testing.T, path string, into any) int {
	t.Helper()
	resp, err := http.Get("http://" + w.addr + path)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if into != nil {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(into))
	}
	return resp.StatusCode
}

func (w watchedQiflow) reloads(t *testing.T) []reload {
	t.Helper()
	var body struct{ Reloads []reload }
	w.get(t, "/reloads", &body)
	return body.Reloads
}

// awaitReloads waits until n reloads are on record and returns them.
func (w watchedQiflow) awaitReloads(t *testing.T, n int) []reload {
	t.Helper()
	var all []reload
	require.Eventually(t, func() bool { all = w.reloads(t); return len(all) >= n }, 30*time.Second, 20*time.Millisecond,
		"want %d reloads, have %+v:\n%s", n, all, w.Output())
	return all
}

// generator is a pipeline that writes word to out every 20 ms.
func generator(word, out string) string {
	return fmt.Sprintf(`input:
  generate:
    interval: 20ms
    mapping: 'root = %q'
output:
  file:
    path: %s
    codec: lines
`, word, out)
}

// awaitLine waits until file's last line is want: the config with want runs.
func awaitLine(t *testing.T, file, want string, w watchedQiflow) {
	t.Helper()
	require.Eventually(t, func() bool {
		raw, _ := os.ReadFile(file)
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		return lines[len(lines)-1] == want
	}, 20*time.Second, 10*time.Millisecond, "%s never ended with %q:\n%s", file, want, w.Output())
}

func TestRunWatchPicksUpEverySaveByRename(t *testing.T) {
	dir := t.TempDir()
	file, out := filepath.Join(dir, "pipeline.yaml"), filepath.Join(dir, "out.txt")
	require.NoError(t, os.WriteFile(file, []byte(generator("v0", out)), 0o644))
	w := startWatch(t, "run", file)
	awaitLine(t, out, "v0", w)

	for i := 1; i <= 10; i++ {
		word := fmt.Sprintf("v%d", i)
		if i%2 == 1 {
			sed := exec.Command("sed", "-i", fmt.Sprintf("s/'root = \"v%d\"'/'root = \"%s\"'/", i-1, word), file)
			outText, err := sed.CombinedOutput()
			require.NoError(t, err, "%s", outText)
		} else {
			tmp := filepath.Join(dir, ".pipeline.yaml.tmp")
			require.NoError(t, os.WriteFile(tmp, []byte(generator(word, out)), 0o644))
			require.NoError(t, os.Rename(tmp, file))
		}
		awaitLine(t, out, word, w)
	}

	all := w.awaitReloads(t, 11)
	require.Len(t, all, 11, "the start and one reload per save: %+v", all)
	for i, r := range all[1:] {
		assert.Equal(t, "watch", r.Trigger, "save %d", i+1)
		assert.Equal(t, "applied", r.Result, "save %d: %s", i+1, r.Reason)
		assert.Equal(t, i+2, r.Generation, "save %d", i+1)
	}

	require.NoError(t, w.Signal(syscall.SIGTERM))
	code, err := w.Wait(20 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "SIGTERM stops it cleanly:\n%s", w.Output())
}

func TestStreamsWatchFollowsADirectory(t *testing.T) {
	dir, outs := t.TempDir(), t.TempDir()
	outA, outB := filepath.Join(outs, "a.txt"), filepath.Join(outs, "b.txt")
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(generator("a", outA)), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "schema.yaml"), []byte("tables: []\n"), 0o644))
	w := startWatch(t, "streams", dir)
	awaitLine(t, outA, "a", w)

	started := w.awaitReloads(t, 2)
	byStream := map[string]reload{}
	for _, r := range started {
		byStream[r.Stream] = r
	}
	assert.Equal(t, "applied", byStream["a"].Result)
	assert.Equal(t, "rejected", byStream["schema"].Result)
	assert.Contains(t, byStream["schema"].Reason, "not a pipeline config")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(generator("b", outB)), 0o644))
	awaitLine(t, outB, "b", w)
	require.NoError(t, os.Remove(filepath.Join(dir, "a.yaml")))
	all := w.awaitReloads(t, 4)
	assert.Equal(t, reload{Seq: 3, Trigger: "watch", Stream: "b", Result: "applied", Generation: 2}, all[2])
	assert.Equal(t, "removed", all[3].Result)
	assert.Equal(t, "a", all[3].Stream)

	var ready struct{ Streams []struct{ Stream string } }
	assert.Equal(t, http.StatusOK, w.get(t, "/ready", &ready))
	require.Len(t, ready.Streams, 1)
	assert.Equal(t, "b", ready.Streams[0].Stream)

	// A broken file is rejected; POST /reload says so, and b runs on.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yaml"), []byte("input: [\n"), 0o644))
	w.awaitReloads(t, 5)
	resp, err := http.Post("http://"+w.addr+"/reload", "", nil)
	require.NoError(t, err)
	var posted struct{ Reloads []reload }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&posted))
	resp.Body.Close()
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	require.Len(t, posted.Reloads, 2, "%+v", posted.Reloads)
	for _, r := range posted.Reloads {
		assert.Equal(t, "http", r.Trigger)
		assert.Equal(t, "rejected", r.Result)
	}
	assert.Equal(t, http.StatusOK, w.get(t, "/ready", nil), "b still runs")
	awaitLine(t, outB, "b", w)
}

func TestRunWatchRefusesAConfigThatCannotStart(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	file := writeConfig(t, "input:\n  generate:\n    mapping: 'root = '\noutput:\n  drop: {}\n")
	out, err := exec.Command(bin, "run", "--watch", "--http-address", "", file).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), file)
	assert.Contains(t, string(out), "(3,22) expected query", "the line and column of the error")
}
