package devcmd_test

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
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

// runDev runs `qiflow dev` in this process with args, as the CLI does,
// and returns what it printed. It must exit 0 within timeout.
func runDev(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	var out, errOut syncBuffer
	app := &cli.App{Name: "qiflow", Commands: []*cli.Command{devcmd.CLICommand()}, Writer: &out, ErrWriter: &errOut}
	done := make(chan error, 1)
	go func() {
		done <- app.Run(append([]string{"qiflow", "dev", "--pipelines", "../../pipelines"}, args...))
	}()
	select {
	case err := <-done:
		require.NoError(t, err, "output:\n%s\nlog:\n%s", &out, &errOut)
	case <-time.After(timeout):
		t.Fatalf("qiflow dev %v did not stop within %v; output:\n%s", args, timeout, &out)
	}
	t.Logf("qiflow dev %v:\n%s", args, &out)
	return out.String()
}

// producedLine is the summary's count of messages the feed produced.
var producedLine = regexp.MustCompile(`feed \d+ msg/s, (\d+) produced`)

// lastNumber returns the last match of re's first group in text.
func lastNumber(t *testing.T, re *regexp.Regexp, text string) int64 {
	t.Helper()
	m := re.FindAllStringSubmatch(text, -1)
	require.NotEmpty(t, m, "%v in:\n%s", re, text)
	n, err := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	require.NoError(t, err)
	return n
}

// tableRows counts the rows of each shipped table, 0 for one that does not
// exist.
func tableRows(t *testing.T, conn *pgx.Conn) map[string]int64 {
	t.Helper()
	rows := map[string]int64{}
	for name, table := range map[string]string{"prices": "crypto_prices", "ohlcv": "crypto_ohlcv", "analytics": "crypto_market_analytics"} {
		var exists bool
		require.NoError(t, conn.QueryRow(context.Background(), "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists))
		if exists {
			var count int64
			require.NoError(t, conn.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&count))
			rows[name] = count
		}
	}
	return rows
}

// TestDevUsesItsOwnServicesUnlessToldAndCountsOnlyItsOwnRun exports
// REDPANDA_BROKERS and DATABASE_URL pointing at a broker and a database
// that stand for production. Without a flag, `qiflow dev` says it ignores
// them and leaves them untouched. With --use-env it says loudly that the
// run is not isolated, and its summary counts only what it did: the
// messages it produced, not the ones already in the topic, and the rows it
// wrote, not the previous run's.
func TestDevUsesItsOwnServicesUnlessToldAndCountsOnlyItsOwnRun(t *testing.T) {
	production := testenv.NewBroker(t, testenv.WithTopics(12, "crypto-prices"))
	production.ProduceN(t, "crypto-prices", 100, func(i int) *kgo.Record {
		return &kgo.Record{Value: []byte(fmt.Sprintf(`{"already":%d}`, i))}
	})
	dsn := testenv.Database(t)
	t.Setenv("REDPANDA_BROKERS", production.SeedList())
	t.Setenv("DATABASE_URL", dsn)
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	adm := production.Admin(t)
	produced := func() int64 {
		ends, err := adm.ListEndOffsets(context.Background(), "crypto-prices", "crypto-ohlcv", "crypto-analytics")
		require.NoError(t, err)
		var sum int64
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err == nil {
				sum += o.Offset
			}
		})
		return sum
	}

	out := runDev(t, time.Minute, "--duration", "5s", "--interval", "2s")
	assert.Contains(t, out, "REDPANDA_BROKERS and DATABASE_URL are ignored; --use-env uses them")
	assert.Contains(t, out, "(in-process kfake)")
	assert.Contains(t, out, "(throwaway cluster")
	assert.NotContains(t, out, "WARNING")
	assert.Equal(t, int64(100), produced(), "nothing was produced into the exported broker")
	assert.Equal(t, map[string]int64{}, tableRows(t, conn), "nothing was created in the exported database")
	topics, err := adm.ListTopics(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"crypto-prices"}, topics.Names(), "no topic was created on the exported broker")

	for run := 1; run <= 2; run++ {
		before, rowsBefore := produced(), tableRows(t, conn)
		out = runDev(t, time.Minute, "--use-env", "--duration", "6s", "--interval", "2s")
		assert.Contains(t, out, "WARNING:  --use-env: this run is not isolated")
		assert.Contains(t, out, "broker:   "+production.SeedList()+" (--use-env)")
		assert.Equal(t, produced()-before, lastNumber(t, producedLine, out),
			"run %d: the summary counts the messages this run produced, not the %d there before", run, before)
		rows, last := tableRows(t, conn), summaryRows(t, out[strings.LastIndex(out, "stopping:"):])
		for name, n := range rows {
			assert.Equal(t, n-rowsBefore[name], int64(last[name]), "run %d: %s rows this run wrote", run, name)
			assert.Positive(t, last[name], "run %d wrote %s rows", run, name)
		}
		assert.Contains(t, out, "uncommitted   qiflow-prices 0 qiflow-ohlcv 0 qiflow-analytics 0")
	}
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
