package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

func TestSecondPlainRunOnATakenAddressExitsAtOnce(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	dir := t.TempDir()
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	first := writeConfig(t, generator("a", filepath.Join(dir, "a.txt")))
	running := testenv.StartProcess(t, bin, nil, "run", "--http-address", addr, first)
	running.WaitForOutput(t, "Listening for HTTP requests at: http://"+addr, 20*time.Second)

	for _, command := range []string{"run", "streams"} {
		t.Run(command, func(t *testing.T) {
			second := writeConfig(t, generator("b", filepath.Join(dir, command+".txt")))
			args := []string{command, second}
			env := []string{httpAddressEnv + "=" + addr} // streams: their root config's address comes from here
			ctx, cancel := context.WithTimeout(context.Background(), takenPortExitWithin)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = append(os.Environ(), env...)
			began := time.Now()
			out, err := cmd.CombinedOutput()
			took := time.Since(began)
			t.Logf("plain qiflow %s on the taken %s exited after %s", command, addr, took.Round(time.Millisecond))
			require.NoError(t, ctx.Err(), "still running after %s:\n%s", takenPortExitWithin, out)
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "%s", out)
			assert.Equal(t, 1, exit.ExitCode(), "%s", out)
			msg := string(out)
			assert.Contains(t, msg, "qiflow "+command+": the HTTP server cannot listen on "+addr+
				": address already in use (another qiflow, or another program, holds it)")
			assert.Contains(t, msg, "--http-address ADDR", "how to choose another address")
			assert.Contains(t, msg, `--http-address ""`, "how to run without the server")
			_, statErr := os.Stat(filepath.Join(dir, command+".txt"))
			assert.ErrorIs(t, statErr, os.ErrNotExist, "the second pipeline wrote nothing")
		})
	}

	resp, err := http.Get("http://" + addr + "/ready")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the first qiflow still serves:\n%s", running.Output())
}

func TestPlainRunListensOnLoopbackByDefault(t *testing.T) {
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
	file := writeConfig(t, generator("a", filepath.Join(t.TempDir(), "out.txt")))
	p := testenv.StartProcess(t, bin, nil, "run", file)
	p.WaitForOutput(t, "Listening for HTTP requests at: http://"+want, 20*time.Second)

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

func TestPlainRunHTTPAddress(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	configured := writeConfig(t, "http:\n  address: "+addr+"\ninput:\n  generate: {mapping: 'root = 1'}\n")
	interpolated := writeConfig(t, "http:\n  address: ${SOMEWHERE:127.0.0.1:1}\ninput:\n  generate: {mapping: 'root = 1'}\n")
	plain := writeConfig(t, "input:\n  generate: {mapping: 'root = 1'}\n")
	cases := []struct {
		name string
		env  string
		args []string
		want []string
	}{
		{name: "default: loopback", args: []string{"run", plain},
			want: []string{"run", "--set", "http.address=127.0.0.1:4195", plain}},
		{name: "the config's stays", args: []string{"run", configured}, want: []string{"run", configured}},
		{name: "an interpolated one stays", args: []string{"run", interpolated}, want: []string{"run", interpolated}},
		{name: "env beats the config", env: addr, args: []string{"run", configured},
			want: []string{"run", "--set", "http.address=" + addr, configured}},
		{name: "--set stays", env: "127.0.0.1:1", args: []string{"run", "--set", "http.address=" + addr, plain},
			want: []string{"run", "--set", "http.address=" + addr, plain}},
		{name: "the flag beats all", args: []string{"run", "--http-address=" + addr, "--set", "http.address=127.0.0.1:1", plain},
			want: []string{"run", "--set", "http.address=" + addr, "--set", "http.address=127.0.0.1:1", plain}},
		{name: "an empty flag disables it", args: []string{"run", "--http-address", "", plain},
			want: []string{"run", "--set", "http.enabled=false", plain}},
		{name: "streams: the root config's", args: []string{"streams", "-o", configured, plain},
			want: []string{"streams", "-o", configured, plain}},
		{name: "other commands unchanged", args: []string{"lint", plain}, want: []string{"lint", plain}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(httpAddressEnv, c.env)
			if c.env == "" {
				require.NoError(t, os.Unsetenv(httpAddressEnv))
			}
			got, err := plainHTTP(append([]string{"qiflow"}, c.args...))
			if err != nil {
				t.Skipf("an address this case checks is taken here: %v", err)
			}
			assert.Equal(t, append([]string{"qiflow"}, c.want...), got)
		})
	}
}
