package devcmd_test

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/testenv"
	"github.com/qicore/qiflow/plugins/devcmd"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// syncBuffer is a bytes.Buffer the command writes to while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestDevFillsAllThreeTablesAndPrintsASummary(t *testing.T) {
	dsn := testenv.Database(t)
	t.Setenv("REDPANDA_BROKERS", "") // the in-process broker, whatever the machine has set
	var out, errOut syncBuffer
	app := &cli.App{Name: "qiflow", Commands: []*cli.Command{devcmd.CLICommand()}, Writer: &out, ErrWriter: &errOut}
	done := make(chan error, 1)
	started := time.Now()
	go func() {
		done <- app.Run([]string{"qiflow", "dev", "--duration", "25s", "--interval", "2s",
			"--pipelines", "../../pipelines", "--database-url", dsn})
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tables := []string{"crypto_prices", "crypto_ohlcv", "crypto_market_analytics"}
	require.Eventually(t, func() bool {
		for _, table := range tables {
			var n int64
			// Before the schema is applied the table does not exist; keep waiting.
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n == 0 {
				return false
			}
		}
		return true
	}, 30*time.Second, 250*time.Millisecond, "rows in all of %v within 30 s; output:\n%s\n%s", tables, &out, &errOut)

	select {
	case err := <-done:
		require.NoError(t, err, "output:\n%s\nlog:\n%s", &out, &errOut)
	case <-time.After(60 * time.Second):
		t.Fatalf("qiflow dev did not stop 60 s after it started; output:\n%s", &out)
	}
	elapsed := time.Since(started)
	assert.GreaterOrEqual(t, elapsed, 25*time.Second, "--duration 25s ran for %v", elapsed)

	summary := out.String()
	t.Logf("output:\n%s", summary)
	for _, want := range []string{"msg/s", "crypto_prices ", "crypto_ohlcv ", "crypto_market_analytics ",
		"crypto-prices.dlq", "crypto-ohlcv.dlq", "crypto-analytics.dlq", "last prices   market time", "binance", "BTC", "stopping"} {
		assert.Contains(t, summary, want)
	}
	assert.NotContains(t, summary, "none yet\n──", "the last summary shows prices")
}

func TestComposeFileIsValid(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Skip("docker-compose not on PATH; skipping the offline check of docker-compose.yml (apt-get install -y docker-compose)")
	}
	out, err := exec.Command(bin, "-f", "../../docker-compose.yml", "config", "-q").CombinedOutput()
	require.NoError(t, err, "docker-compose config -q:\n%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)))
}
