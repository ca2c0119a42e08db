package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Terminal is one command running in a real terminal: a tmux pane on a
// tmux server of the test's own, so that tests neither see nor disturb
// anyone else's sessions. Keys go in with SendKeys and the screen comes out
// with Screen, as a person would type and read. The pane stays after the
// command exits, so its last screen and exit status can be read.
type Terminal struct {
	t      testing.TB
	socket string
}

// StartTerminal runs command (a shell command line) in dir, with env as
// its whole environment, in a width × height terminal. The tmux server is
// killed, and with it the command, when the test ends.
func StartTerminal(t testing.TB, dir string, env []string, width, height int, command string) *Terminal {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("testenv: tmux is not installed (make deps-test installs it): %v", err)
	}
	conf := filepath.Join(t.TempDir(), "tmux.conf")
	if err := os.WriteFile(conf, []byte("set -g remain-on-exit on\nset -g history-limit 10000\n"), 0o644); err != nil {
		t.Fatalf("testenv: write tmux config: %v", err)
	}
	tm := &Terminal{t: t, socket: fmt.Sprintf("qiflow-test-%d-%d", os.Getpid(), time.Now().UnixNano())}
	cmd := tm.tmux("-f", conf, "new-session", "-d", "-s", "main", "-c", dir,
		"-x", strconv.Itoa(width), "-y", strconv.Itoa(height), command)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: start tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = tm.tmux("kill-server").Run() })
	return tm
}

func (tm *Terminal) tmux(args ...string) *exec.Cmd {
	return exec.Command("tmux", append([]string{"-L", tm.socket}, args...)...)
}

// SendKeys types keys, in tmux's key names: "C-c" is Ctrl-C, "Enter" the
// return key; other strings are typed as they are.
func (tm *Terminal) SendKeys(keys ...string) {
	tm.t.Helper()
	if out, err := tm.tmux(append([]string{"send-keys", "-t", "main"}, keys...)...).CombinedOutput(); err != nil {
		tm.t.Fatalf("testenv: tmux send-keys %q: %v: %s", keys, err, out)
	}
}

// Screen returns what the terminal shows now, one string per screen line,
// trailing blank lines dropped.
func (tm *Terminal) Screen() string { return tm.capture() }

// History returns everything the terminal showed, scrolled-off lines
// included.
func (tm *Terminal) History() string { return tm.capture("-S", "-") }

func (tm *Terminal) capture(args ...string) string {
	tm.t.Helper()
	out, err := tm.tmux(append([]string{"capture-pane", "-p", "-t", "main"}, args...)...).Output()
	if err != nil {
		tm.t.Fatalf("testenv: tmux capture-pane: %v", err)
	}
	return strings.TrimRight(string(out), "\n ") + "\n"
}

// WaitFor waits until the screen shows text, and fails the test with the
// screen after timeout.
func (tm *Terminal) WaitFor(text string, timeout time.Duration) {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		screen := tm.Screen()
		if strings.Contains(screen, text) {
			return
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("testenv: the terminal did not show %q within %v; it shows:\n%s", text, timeout, screen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitExit waits until the command has exited and returns how: its exit
// status, or the signal that killed it (0 when it exited). ok is false
// when it still runs after timeout.
func (tm *Terminal) WaitExit(timeout time.Duration) (status, signal int, ok bool) {
	tm.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := tm.tmux("display-message", "-p", "-t", "main", "#{pane_dead}:#{pane_dead_status}:#{pane_dead_signal}").Output()
		if err != nil {
			tm.t.Fatalf("testenv: tmux display-message: %v", err)
		}
		// An empty field is a number tmux does not know: no status for a
		// command a signal killed, and the other way round.
		f := strings.Split(strings.TrimSpace(string(out)), ":")
		if len(f) == 3 && f[0] == "1" {
			status, _ = strconv.Atoi(f[1])
			signal, _ = strconv.Atoi(f[2])
			return status, signal, true
		}
		if time.Now().After(deadline) {
			return 0, 0, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}
