package devcmd_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// pipelineRow is a summary line of one ingest pipeline: its name, rows/s,
// rows, conflicts and dead letters.
var pipelineRow = regexp.MustCompile(`(?m)^  (prices|ohlcv|analytics)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s`)

// summaryRows returns the rows of each pipeline in the last summary of
// text.
func summaryRows(t *testing.T, text string) map[string]int {
	t.Helper()
	rows := map[string]int{}
	for _, m := range pipelineRow.FindAllStringSubmatch(text, -1) {
		n, err := strconv.Atoi(m[3])
		require.NoError(t, err)
		rows[m[1]] = n
	}
	return rows
}

// bareEnvironment is the test's environment without the variables that
// would point qiflow at other services.
func bareEnvironment() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "REDPANDA_BROKERS=") && !strings.HasPrefix(kv, "MAKEFLAGS=") {
			env = append(env, kv)
		}
	}
	return env
}

// TestCtrlCOnMakeDemoAtATerminalDrainsAndStops runs the README's first
// command as a new user does, at a real terminal: `make demo`. The summary
// redraws in place. Ctrl-C goes to the terminal's whole foreground process
// group, make and qiflow alike; the throwaway PostgreSQL, in a group of its
// own, keeps running until the pipelines have drained into it. So the stop
// takes about a second, writes everything (0 uncommitted), and shows no
// retries and no make error.
func TestCtrlCOnMakeDemoAtATerminalDrainsAndStops(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	term := testenv.StartTerminal(t, root, bareEnvironment(), 150, 50, "make demo DEMO_FLAGS='--interval 1s'")
	term.WaitFor("── qiflow dev", 5*time.Minute) // make builds qiflow first

	// Wait until every pipeline has written rows, and the summary has been
	// refreshed a few times.
	deadline := time.Now().Add(90 * time.Second)
	for {
		screen := term.Screen()
		rows := summaryRows(t, screen)
		if len(rows) == 3 && rows["prices"] > 0 && rows["ohlcv"] > 0 && rows["analytics"] > 0 {
			break
		}
		require.True(t, time.Now().Before(deadline), "rows in all three tables within 90 s; the terminal shows:\n%s", screen)
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(3 * time.Second)
	screen := term.Screen()
	assert.Equal(t, 1, strings.Count(term.History(), "── qiflow dev"),
		"the summary is redrawn in place, not scrolled; the terminal shows:\n%s", screen)
	for _, want := range []string{"rows/s", "conflicts", "dead letters", "lag", "p50 ms", "p99 ms", "last prices   market time", "binance"} {
		assert.Contains(t, screen, want)
	}

	pressed := time.Now()
	term.SendKeys("C-c")
	status, signal, ok := term.WaitExit(30 * time.Second)
	took := time.Since(pressed)
	history := term.History()
	require.True(t, ok, "make demo still runs 30 s after Ctrl-C; the terminal shows:\n%s", history)
	t.Logf("Ctrl-C to exit: %v (status %d, signal %d); the terminal showed:\n%s", took.Round(time.Millisecond), status, signal, history)

	// make dies of the SIGINT it re-raises once qiflow has exited 0.
	assert.True(t, signal == int(syscall.SIGINT) || (signal == 0 && status == 0), "status %d, signal %d", status, signal)
	// The terminal's whole history was logged above; the checks say only
	// what is missing or extra.
	assert.False(t, strings.Contains(history, "make: ***"), "make reports no error")
	assert.True(t, strings.Contains(history, "uncommitted   qiflow-prices 0 qiflow-ohlcv 0 qiflow-analytics 0"), "it drains before it stops: 0 uncommitted")
	for _, noise := range []string{"Retrying", "57P01", "shutting down", "level=error"} {
		assert.False(t, strings.Contains(history, noise), "no %q: the database outlives the drain", noise)
	}
	final := summaryRows(t, history[strings.LastIndex(history, "stopping:"):])
	for _, p := range []string{"prices", "ohlcv", "analytics"} {
		assert.Positive(t, final[p], "the last summary shows %s's rows", p)
	}
	assert.Less(t, took, 10*time.Second, "Ctrl-C stops in about a second")
}
