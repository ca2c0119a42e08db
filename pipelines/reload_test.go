package pipelines_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

// reloadRecord is one entry of GET /reloads.
type reloadRecord struct {
	Seq          int       `json:"seq"`
	At           time.Time `json:"at"`
	Trigger      string    `json:"trigger"`
	Result       string    `json:"result"`
	Reason       string    `json:"reason"`
	Generation   int       `json:"generation"`
	DrainSeconds float64   `json:"drain_seconds"`
	GapSeconds   float64   `json:"gap_seconds"`
}

// watchedPipeline is a shipped pipeline copied to a temporary directory and
// run by `qiflow run --watch`, so the test can edit it as a user would.
type watchedPipeline struct {
	qiflowProcess
	file string
	base string
}

func runWatched(t *testing.T, env []string, shipped string, args ...string) watchedPipeline {
	t.Helper()
	base, err := os.ReadFile(shipped)
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), shipped)
	require.NoError(t, os.WriteFile(file, base, 0o644))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	args = append([]string{"run", "--watch", "--http-address", addr, "--reload-start-timeout", "2s", "--watch-debounce", "50ms", file}, args...)
	proc := testenv.StartProcess(t, bin, env, args...)
	w := watchedPipeline{qiflowProcess{proc, addr}, file, string(base)}
	require.Eventually(t, func() bool { return len(w.reloads(t)) == 1 }, 30*time.Second, 20*time.Millisecond,
		"qiflow did not start:\n%s", proc.Output())
	return w
}

func (w watchedPipeline) reloads(t *testing.T) []reloadRecord {
	t.Helper()
	resp, err := http.Get("http://" + w.http + "/reloads")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct{ Reloads []reloadRecord }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return body.Reloads
}

// save writes text the way most editors do: to a temporary file, renamed
// over the config.
func (w watchedPipeline) save(t *testing.T, text string) {
	t.Helper()
	tmp := w.file + ".swp"
	require.NoError(t, os.WriteFile(tmp, []byte(text), 0o644))
	require.NoError(t, os.Rename(tmp, w.file))
}

// saveAndWait saves text and returns the reload it caused.
func (w watchedPipeline) saveAndWait(t *testing.T, text string) reloadRecord {
	t.Helper()
	before := len(w.reloads(t))
	w.save(t, text)
	var rec reloadRecord
	require.Eventually(t, func() bool {
		all := w.reloads(t)
		if len(all) > before {
			rec = all[before]
			return true
		}
		return false
	}, 60*time.Second, 20*time.Millisecond, "no reload reported:\n%s", w.Output())
	return rec
}

var dsnLine = regexp.MustCompile(`(?m)^(\s+)dsn:.*$`)

// Edits of the shipped prices pipeline, one per kind of reload.
func validEdit(base string, i int) string {
	return base + fmt.Sprintf("\n# edit %d\npipeline:\n  threads: %d\n", i, 1+i%2)
}

func invalidYAML(base string) string { return base + "\ninput: [\n" }

func lintError(base string) string { return base + "\nbogus_section: true\n" }

// unreachableDatabase fails only at start: it lints and builds, but its
// output never connects.
func unreachableDatabase(base string) string {
	const bad = "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=1"
	if dsnLine.MatchString(base) {
		return dsnLine.ReplaceAllString(base, `${1}dsn: "`+bad+`"`)
	}
	return strings.Replace(base, "    table: crypto_prices", "    dsn: \""+bad+"\"\n    table: crypto_prices", 1)
}

// missingTopic fails only at start too, after its output has connected to
// the database: the input waits for a topic that does not exist.
func missingTopic(base string) string {
	return strings.Replace(base, "topics: [ crypto-prices ]", "topics: [ crypto-prices-missing ]", 1)
}

// readyWatch polls GET /ready and keeps the moments it was not ready.
type readyWatch struct {
	mu       sync.Mutex
	notReady []time.Time
	stop     chan struct{}
	done     chan struct{}
}

func watchReady(addr string) *readyWatch {
	r := &readyWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		client := http.Client{Timeout: time.Second}
		for {
			select {
			case <-r.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			at := time.Now()
			resp, err := client.Get("http://" + addr + "/ready")
			if err == nil {
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode != http.StatusOK {
				r.mu.Lock()
				r.notReady = append(r.notReady, at)
				r.mu.Unlock()
			}
		}
	}()
	return r
}

func (r *readyWatch) finish() []time.Time {
	close(r.stop)
	<-r.done
	return r.notReady
}

func TestReloadUnderLoadLosesAndDoublesNothing(t *testing.T) {
	const (
		total   = 200_000
		reloads = 20
		step    = total / reloads
	)
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	w := runWatched(t, env(broker, dsn), "prices.yaml")
	// The first start is not a reload: watch /ready from when it is up.
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + w.http + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 30*time.Second, 20*time.Millisecond, "the first stream never became ready:\n%s", w.Output())
	ready := watchReady(w.http)

	var records []reloadRecord
	for i := range reloads {
		broker.ProduceN(t, "crypto-prices", step, func(j int) *kgo.Record { return &kgo.Record{Value: priceMessage(i*step + j)} })
		var text, want string
		switch i % 4 {
		case 0:
			text, want = validEdit(w.base, i), "applied"
		case 1:
			text, want = invalidYAML(w.base), "rejected"
		case 2:
			text, want = lintError(w.base), "rejected"
		case 3:
			text, want = unreachableDatabase(w.base), "rolled_back"
		}
		rec := w.saveAndWait(t, text)
		require.Equal(t, want, rec.Result, "reload %d: %+v", i, rec)
		records = append(records, rec)
	}
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 120*time.Second, w.qiflowProcess)
	notReady := ready.finish()
	assert.Equal(t, total, rowCount(t, dsn, "crypto_prices"), "every message is exactly one row")
	assert.Empty(t, broker.ConsumeAll(t, "crypto-prices.dlq"), "a reload dead-letters nothing")

	for i, rec := range records {
		t.Logf("reload %2d %-11s at %s generation %d drain %.3fs gap %.3fs", i, rec.Result, rec.At.Format("15:04:05.000"), rec.Generation, rec.DrainSeconds, rec.GapSeconds)
	}
	generation := 1
	for i, rec := range records {
		switch rec.Result {
		case "rejected":
			assert.Equal(t, generation, rec.Generation, "reload %d: a rejected config leaves the running stream alone", i)
			assert.Zero(t, rec.DrainSeconds, "reload %d: nothing was drained", i)
			assert.NotEmpty(t, rec.Reason)
		case "applied", "rolled_back":
			assert.Greater(t, rec.Generation, generation, "reload %d: a new stream runs", i)
			generation = rec.Generation
		}
		if rec.Result == "rolled_back" {
			assert.Contains(t, rec.Reason, "not ready", "reload %d", i)
		}
	}
	// The pipeline was unready only while a reload swapped streams.
	for _, at := range notReady {
		inSwap := false
		for _, rec := range records {
			if rec.GapSeconds > 0 {
				from := rec.At.Add(-time.Duration(rec.GapSeconds*float64(time.Second)) - 100*time.Millisecond)
				inSwap = inSwap || (at.After(from) && at.Before(rec.At.Add(100*time.Millisecond)))
			}
		}
		assert.True(t, inSwap, "/ready failed at %s, outside every reload", at.Format(time.RFC3339Nano))
	}

	reloaded := w.metric(t, "qiflow_reloads_total")
	assert.Equal(t, float64(reloads+1), reloaded, "/metrics counts every reload, the start included")
	assert.GreaterOrEqual(t, w.metric(t, "qiflow_timescale_rows_written_total"), float64(total),
		"the counter runs on across reloads instead of restarting with each stream")
	stop(t, w.qiflowProcess)
}

func TestFailedReloadsLeakNoConsumerAndNoConnection(t *testing.T) {
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	broker.ProduceN(t, "crypto-prices", 5000, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })
	const poolSize = 2
	w := runWatched(t, env(broker, dsn), "prices.yaml", "--set", fmt.Sprintf("output.timescale.pool_size=%d", poolSize))
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 60*time.Second, w.qiflowProcess)
	require.Equal(t, 1, groupMembers(t, broker, "qiflow-prices"))
	require.LessOrEqual(t, qiflowConnections(t, dsn), poolSize)

	for i := range 10 {
		text := unreachableDatabase(w.base)
		if i%2 == 1 {
			text = missingTopic(w.base)
		}
		rec := w.saveAndWait(t, text)
		require.Equal(t, "rolled_back", rec.Result, "attempt %d: %+v", i, rec)
	}
	broker.ProduceN(t, "crypto-prices", 5000, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(5000 + i)} })
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 60*time.Second, w.qiflowProcess)

	assert.Equal(t, 1, groupMembers(t, broker, "qiflow-prices"), "one consumer in the group, as before")
	assert.LessOrEqual(t, qiflowConnections(t, dsn), poolSize, "no database connection is left behind")
	assert.Equal(t, 10_000, rowCount(t, dsn, "crypto_prices"))
	stop(t, w.qiflowProcess)
}

func groupMembers(t *testing.T, broker *testenv.Broker, group string) int {
	t.Helper()
	described, err := broker.Admin(t).DescribeGroups(context.Background(), group)
	require.NoError(t, err)
	return len(described[group].Members)
}

// qiflowConnections counts the client connections to dsn's database, the
// test's own excluded (TimescaleDB's background workers are not clients).
func qiflowConnections(t *testing.T, dsn string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx,
		`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()`).Scan(&n))
	return n
}
