package devcmd_test

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rowsLine is the summary's line of row counts per table.
var rowsLine = regexp.MustCompile(`crypto_prices (\d+)\s+crypto_ohlcv (\d+)\s+crypto_market_analytics (\d+)`)

// TestMakeDemoFromTheREADME runs the README's first command as a new user
// does: `make demo`, with neither DATABASE_URL nor REDPANDA_BROKERS set, so
// it builds qiflow, starts its own PostgreSQL cluster and broker, and prints
// the summary. Rows must reach all three tables within its 30 s.
func TestMakeDemoFromTheREADME(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", "-C", "../..", "demo", "DEMO_FLAGS=--duration 30s --interval 3s")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "REDPANDA_BROKERS=") && !strings.HasPrefix(kv, "MAKEFLAGS=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "make demo:\n%s", out)

	counts := rowsLine.FindAllStringSubmatch(string(out), -1)
	require.NotEmpty(t, counts, "make demo printed no summary:\n%s", out)
	last := counts[len(counts)-1]
	for i, table := range []string{"crypto_prices", "crypto_ohlcv", "crypto_market_analytics"} {
		n, err := strconv.Atoi(last[i+1])
		require.NoError(t, err)
		assert.Positive(t, n, "%s has rows:\n%s", table, out)
	}
	assert.Contains(t, string(out), "uncommitted   qiflow-prices 0 qiflow-ohlcv 0 qiflow-analytics 0", "it drains before it stops")
}
