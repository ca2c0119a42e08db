package devcmd_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// readmeBlock returns the lines of the first sh block after heading in the
// README, without their comments.
func readmeBlock(t *testing.T, readme, heading string) []string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n"+heading+"\n")
	require.True(t, ok, "the README has a %q section", heading)
	_, block, ok := strings.Cut(section, "```sh\n")
	require.True(t, ok, "%s has a sh block", heading)
	block, _, ok = strings.Cut(block, "```")
	require.True(t, ok)
	var lines []string
	for _, l := range strings.Split(block, "\n") {
		if i := strings.Index(l, " #"); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// exportLine matches an export of the walkthrough, with single-quoted
// values.
var exportVar = regexp.MustCompile(`(\w+)=('[^']*'|\S+)`)

// TestTheIngestWalkthroughRunsAsWrittenOnABareMachine runs the README's
// "Ingest market data" commands, line by line, on this machine with only Go
// and PostgreSQL's binaries: `qiflow dev --services-only` provides the
// broker and the database on the addresses the README exports, the schema
// and topics are applied, and the ingest pipelines and the feed fill all
// three tables. Lines ending in & and the feed run in the background; the
// others must exit 0.
func TestTheIngestWalkthroughRunsAsWrittenOnABareMachine(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	t.Chdir(root)
	t.Setenv("REDPANDA_BROKERS", "")
	t.Setenv("DATABASE_URL", "")

	var env []string
	var services *testenv.Process
	var background []*testenv.Process
	for _, line := range readmeBlock(t, string(readme), "## Ingest market data") {
		if line == "make build" {
			continue // BuildBinary built it
		}
		if vars, ok := strings.CutPrefix(line, "export "); ok {
			require.NotNil(t, services, "the walkthrough starts its services before it exports their addresses")
			// What the README exports is what --services-only printed.
			assert.Contains(t, services.Output(), "export "+vars)
			for _, m := range exportVar.FindAllStringSubmatch(vars, -1) {
				env = append(env, m[1]+"="+strings.Trim(m[2], "'"))
			}
			continue
		}
		cmdline, bg := strings.CutSuffix(line, "&")
		args := strings.Fields(cmdline)
		require.Equal(t, "bin/qiflow", args[0], "a walkthrough line runs qiflow: %q", line)
		started := time.Now()
		p := testenv.StartProcess(t, bin, env, args[1:]...)
		switch {
		case strings.Contains(cmdline, "--services-only"):
			p.WaitForOutput(t, "Ctrl-C stops both services", 90*time.Second)
			t.Logf("%s: services up in %v:\n%s", line, time.Since(started).Round(time.Millisecond), p.Output())
			services = p
		case bg || args[1] == "run":
			background = append(background, p)
		default:
			code, err := p.Wait(2 * time.Minute)
			require.NoError(t, err, "%s", line)
			require.Equal(t, 0, code, "%s exits 0; it printed:\n%s", line, p.Output())
			t.Logf("%s: exit 0 in %v", line, time.Since(started).Round(time.Millisecond))
		}
	}
	require.NotNil(t, services)
	require.Len(t, background, 2, "the ingest pipelines and the feed")

	dsn := strings.TrimPrefix(env[len(env)-1], "DATABASE_URL=")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tables := []string{"crypto_prices", "crypto_ohlcv", "crypto_market_analytics"}
	require.Eventually(t, func() bool {
		for _, table := range tables {
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n == 0 {
				return false
			}
		}
		return true
	}, 90*time.Second, 250*time.Millisecond, "rows in all of %v", tables)

	// Ctrl-C, in the reverse order of the walkthrough: the feed, the ingest
	// pipelines, the services. Each stops cleanly, within its drain.
	for _, p := range append([]*testenv.Process{background[1], background[0]}, services) {
		stopAt := time.Now()
		require.NoError(t, p.Signal(syscall.SIGINT))
		code, err := p.Wait(30 * time.Second)
		require.NoError(t, err)
		assert.Equal(t, 0, code, "exit 0 after Ctrl-C; it printed:\n%s", p.Output())
		t.Logf("stopped in %v", time.Since(stopAt).Round(time.Millisecond))
	}
}
