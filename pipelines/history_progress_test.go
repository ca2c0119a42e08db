package pipelines_test

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// TestReplayShowsProgressOnATerminal runs `qiflow replay` on a real
// pseudo-terminal: it redraws one line with rows, rows/s and the time
// left, and ends with its summary. Off a terminal (the other replay tests)
// it writes no escape codes.
func TestReplayShowsProgressOnATerminal(t *testing.T) {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "prices-rebuild", 12)
	dsn := withTables(t, testenv.Database(t))
	const ticks = 1000 // 400,000 rows: a few seconds
	insertHistory(t, dsn, ticks)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")

	cmd := exec.Command(bin, "replay", "--table", "crypto_prices", "--from", rfc3339(0), "--to", rfc3339(ticks),
		"--topic", "prices-rebuild", "--page-size", "1000")
	cmd.Env = append(os.Environ(), env(broker, dsn)...)
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 120})
	require.NoError(t, err)
	defer tty.Close()
	var (
		mu  sync.Mutex
		out bytes.Buffer
	)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		buf := make([]byte, 4096)
		for {
			n, err := tty.Read(buf)
			mu.Lock()
			out.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return // io.EOF or EIO once the process has exited
			}
		}
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		require.NoError(t, err)
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatal("replay did not finish within 3 minutes")
	}
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	mu.Lock()
	text := out.String()
	mu.Unlock()
	assert.Contains(t, text, "\r\033[Kreplayed ", "the progress line is redrawn in place")
	assert.Regexp(t, `replayed [\d,]+ of 400,000 rows \([\d.]+%\), [\d,]+ rows/s, ~\d+s left`, text)
	assert.Contains(t, text, "replayed 400,000 rows of crypto_prices")
}
