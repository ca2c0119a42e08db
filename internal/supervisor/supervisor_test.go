package supervisor

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/qicore/qiflow/plugins/prometheus"
	_ "github.com/qicore/qiflow/plugins/timescale_output"
)

// env is a settable ${VAR} lookup for the streams under test.
type env struct {
	mu   sync.Mutex
	vars map[string]string
}

func (e *env) set(k, v string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.vars[k] = v
}

func (e *env) lookup(k string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	v, ok := e.vars[k]
	return v, ok
}

// harness is a Supervisor over files in a temporary directory, run in
// process until the test ends.
type harness struct {
	*Supervisor
	dir string
	env *env
}

func newHarness(t *testing.T, streams bool, files map[string]string) *harness {
	t.Helper()
	return newHarnessWithEnv(t, streams, map[string]string{}, files)
}

func newHarnessWithEnv(t *testing.T, streams bool, vars, files map[string]string) *harness {
	t.Helper()
	dir := t.TempDir()
	targets := []string{dir}
	for name, text := range files {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
		if !streams {
			targets = []string{path}
		}
	}
	e := &env{vars: vars}
	sup, err := New(Options{
		Targets: targets, Streams: streams,
		StartTimeout: 500 * time.Millisecond, DrainTimeout: 5 * time.Second,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		EnvLookup: e.lookup,
	})
	require.NoError(t, err)
	sup.restoreBackoff = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	h := &harness{Supervisor: sup, dir: dir, env: e}
	require.Eventually(t, func() bool { return len(h.history.list()) >= len(files) }, 10*time.Second, 10*time.Millisecond)
	return h
}

func (h *harness) write(t *testing.T, name, text string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(h.dir, name), []byte(text), 0o644))
}

func (h *harness) reload(t *testing.T) Record {
	t.Helper()
	records, err := h.Reload("http")
	require.NoError(t, err)
	require.Len(t, records, 1, "%+v", records)
	return records[0]
}

const generateToDrop = "input:\n  generate:\n    interval: 10ms\n    mapping: 'root = \"%s\"'\noutput:\n  drop: {}\n"

func generator(word string) string { return strings.Replace(generateToDrop, "%s", word, 1) }

func TestAConstructorErrorIsRejectedBeforeTheRunningStreamIsTouched(t *testing.T) {
	h := newHarness(t, false, map[string]string{"p.yaml": generator("a")})
	h.write(t, "p.yaml", `input:
  generate:
    mapping: 'root = {}'
output:
  timescale:
    dsn: postgres://qiflow@127.0.0.1:1/qiflow
    table: crypto_prices
    format: price
    pool_size: 0
`)
	rec := h.reload(t)
	assert.Equal(t, Rejected, rec.Result, "%+v", rec)
	assert.Contains(t, rec.Reason, "pool_size")
	assert.Equal(t, 1, rec.Generation, "the running stream is the first one still")
	assert.Zero(t, rec.DrainSeconds, "nothing was drained")
	assert.True(t, h.has("p"))
}

func TestAFailedRestoreGivesUpAndLetsTheNextReloadIn(t *testing.T) {
	const old = "input:\n  generate:\n    interval: 10ms\n    mapping: '${MAPPING}'\noutput:\n  drop: {}\n"
	// The old config reads its mapping from the environment; the
	// environment changes under it, so it cannot start again.
	h := newHarnessWithEnv(t, false, map[string]string{"MAPPING": `root = "a"`}, map[string]string{"p.yaml": old})
	h.env.set("MAPPING", "root = ")
	h.write(t, "p.yaml", "input:\n  generate:\n    interval: 10ms\n    mapping: 'root = 1'\noutput:\n  socket:\n    network: tcp\n    address: 127.0.0.1:1\n")

	began := time.Now()
	rec := h.reload(t)
	assert.Equal(t, RolledBack, rec.Result, "%+v", rec)
	assert.Contains(t, rec.Reason, "did not restart either")
	assert.Zero(t, rec.Generation, "no stream runs")
	assert.False(t, h.has("p"), "%+v", h.history.list())
	assert.Less(t, time.Since(began), time.Minute, "the reload returned")

	h.write(t, "p.yaml", generator("fixed"))
	rec = h.reload(t)
	assert.Equal(t, Applied, rec.Result, rec.Reason)
	assert.True(t, h.has("p"))
}

func TestNoReloadRunsAfterShutdownBegan(t *testing.T) {
	h := newHarness(t, false, map[string]string{"p.yaml": generator("a")})
	h.stopAll()
	h.write(t, "p.yaml", generator("b"))
	_, err := h.Reload("http")
	assert.ErrorIs(t, err, errClosing)
	assert.False(t, h.has("p"), "no stream was started")

	rec := httptest.NewRecorder()
	h.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/reload", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}

func TestReadyCountsAConfigThatDoesNotRun(t *testing.T) {
	h := newHarness(t, true, map[string]string{
		"good.yaml":   generator("a"),
		"broken.yaml": "input: [\n",
		"schema.yaml": "tables: []\n",
	})
	rec := httptest.NewRecorder()
	h.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code, "broken.yaml does not run:\n%s", rec.Body)
	assert.Contains(t, rec.Body.String(), `"stream": "broken"`)
	assert.NotContains(t, rec.Body.String(), `"stream": "schema"`, "a file that is no pipeline does not count")

	require.NoError(t, os.Remove(filepath.Join(h.dir, "broken.yaml")))
	_, err := h.Reload("http")
	require.NoError(t, err)
	rec = httptest.NewRecorder()
	h.handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ready", nil))
	assert.Equal(t, http.StatusOK, rec.Code, "%s", rec.Body)
}
