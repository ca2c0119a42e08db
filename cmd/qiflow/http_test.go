package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// takenPortExitWithin bounds how long a qiflow whose HTTP address is taken
// may take to say so and exit: it listens before it builds any stream.
const takenPortExitWithin = 10 * time.Second

func TestSecondWatchOnATakenAddressExitsAtOnce(t *testing.T) {
	dir := t.TempDir()
	first := filepath.Join(dir, "first.yaml")
	require.NoError(t, os.WriteFile(first, []byte(generator("a", filepath.Join(dir, "a.txt"))), 0o644))
	running := startWatch(t, "streams", first)

	for _, command := range []string{"run", "streams"} {
		t.Run(command, func(t *testing.T) {
			bin := testenv.BuildBinary(t, "./cmd/qiflow")
			second := filepath.Join(t.TempDir(), "second.yaml")
			require.NoError(t, os.WriteFile(second, []byte(generator("b", filepath.Join(dir, command+".txt"))), 0o644))
			ctx, cancel := context.WithTimeout(context.Background(), takenPortExitWithin)
			defer cancel()
			began := time.Now()
			out, err := exec.CommandContext(ctx, bin, command, "--watch", "--http-address", running.addr, second).CombinedOutput()
			took := time.Since(began)
			t.Logf("qiflow %s --watch on the taken %s exited after %s", command, running.addr, took.Round(time.Millisecond))
			require.NoError(t, ctx.Err(), "still running after %s:\n%s", takenPortExitWithin, out)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			assert.Equal(t, 1, exit.ExitCode(), "%s", out)
			msg := string(out)
			assert.Contains(t, msg, "the HTTP server cannot listen on "+running.addr+": address already in use")
			assert.Contains(t, msg, "--http-address ADDR", "how to choose another address")
			assert.Contains(t, msg, `--http-address ""`, "how to run without the server")
			assert.NotContains(t, msg, "Reload applied", "no stream started")
			_, statErr := os.Stat(filepath.Join(dir, command+".txt"))
			assert.ErrorIs(t, statErr, os.ErrNotExist, "the second pipeline wrote nothing")
		})
	}
	assert.Equal(t, http.StatusOK, running.get(t, "/ready", nil), "the first qiflow serves on:\n%s", running.Output())
}

func TestRunWatchListensOnLoopbackByDefault(t *testing.T) {
	const want = "127.0.0.1:4195"
	probe, err := net.Listen("tcp", want)
	if err != nil {
		t.Skipf("the default address %s is taken on this machine (%v): nothing to test", want, err)
	}
	require.NoError(t, probe.Close())
	if old, ok := os.LookupEnv(httpAddressEnv); ok {
		require.NoError(t, os.Unsetenv(httpAddressEnv))
		t.Cleanup(func() { _ = os.Setenv(httpAddressEnv, old) })
	}

	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	dir := t.TempDir()
	file := filepath.Join(dir, "pipeline.yaml")
	require.NoError(t, os.WriteFile(file, []byte(generator("a", filepath.Join(dir, "out.txt"))), 0o644))
	p := testenv.StartProcess(t, bin, nil, "run", "--watch", file)
	p.WaitForOutput(t, "Reload applied", 20*time.Second)
	assert.Contains(t, p.Output(), "address="+want)

	resp, err := http.Get("http://" + want + "/ping")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// From any other address of this machine, nothing answers.
	other := nonLoopbackIP(t)
	if other == "" {
		t.Log("this machine has no non-loopback IPv4 address to try")
		return
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(other, "4195"), 2*time.Second)
	if err == nil {
		conn.Close()
	}
	assert.Error(t, err, "%s:4195 must not answer: only loopback is bound", other)
}

// nonLoopbackIP is an IPv4 address of this machine other than loopback, or
// "".
func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	require.NoError(t, err)
	for _, a := range addrs {
		if ipNet, ok := a.(*net.IPNet); ok && !ipNet.IP.IsLoopback() && ipNet.IP.To4() != nil {
			return ipNet.IP.String()
		}
	}
	return ""
}

func TestWatchUsageNamesTheAddressAndItsOptOut(t *testing.T) {
	assert.Contains(t, watchUsage, "127.0.0.1:4195")
	assert.True(t, strings.Contains(watchUsage, `"" disables`), "the opt-out")
	assert.Contains(t, watchUsage, fmt.Sprintf("$%s", httpAddressEnv))
}
