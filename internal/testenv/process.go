package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qicore/qiflow/internal/devenv"
)

// builds holds the binaries BuildBinary made in this process, one build
// per package path, in a directory Main removes.
var builds struct {
	mu    sync.Mutex
	dir   string
	byPkg map[string]*build
}

type build struct {
	once sync.Once
	path string
	err  error
}

// BuildBinary builds the main package pkg (e.g. "./cmd/qiflow", relative
// to the module root) once per test process and returns the binary's path.
func BuildBinary(t testing.TB, pkg string) string {
	t.Helper()
	builds.mu.Lock()
	if builds.byPkg == nil {
		builds.byPkg = make(map[string]*build)
	}
	b, ok := builds.byPkg[pkg]
	if !ok {
		b = new(build)
		builds.byPkg[pkg] = b
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.path, b.err = goBuild(pkg) })
	if b.err != nil {
		t.Fatalf("testenv: build %s: %v", pkg, b.err)
	}
	return b.path
}

// goBuild runs go build for pkg from the module root into a directory of
// its own.
func goBuild(pkg string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	builds.mu.Lock()
	if builds.dir == "" {
		builds.dir, err = os.MkdirTemp("", "qiflow-bin-")
	}
	parent := builds.dir
	builds.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "pkg-")
	if err != nil {
		return "", fmt.Errorf("create build directory: %w", err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, output)
	}
	return out, nil
}

// moduleRoot walks up from the working directory to the one holding
// go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// removeBuilds deletes the binaries BuildBinary made.
func removeBuilds() error {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir == "" {
		return nil
	}
	if err := os.RemoveAll(builds.dir); err != nil {
		return fmt.Errorf("remove built binaries: %w", err)
	}
	return nil
}

// Process is a program a test runs as a user would, with its combined
// stdout and stderr captured. Its methods are safe for concurrent use.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *outputBuffer
	done chan struct{} // closed once the process has exited and been reaped

	// Set before done is closed.
	exitCode int
	waitErr  error
}

// StartProcess runs bin with args and with env added to the test's
// environment. The process is killed when the test ends if it is still
// running, and its output is logged if the test failed. It receives
// SIGKILL if the test process dies first.
func StartProcess(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{
		name: filepath.Base(bin),
		cmd:  exec.Command(bin, args...),
		out:  new(outputBuffer),
		done: make(chan struct{}),
	}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A grandchild holding the output pipe must not keep Wait from
	// returning once the process itself has exited.
	p.cmd.WaitDelay = time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("testenv: start %s: %v", bin, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exitCode = p.cmd.ProcessState.ExitCode()
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			p.waitErr = err
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Kill(); err != nil {
			t.Errorf("testenv: %v", err)
		}
		<-p.done
		if t.Failed() {
			t.Logf("testenv: output of %s %s:\n%s", p.name, strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// Output returns everything the process has written so far.
func (p *Process) Output() string { return p.out.String() }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p.name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process; a process that has already exited is
// not an error.
func (p *Process) Kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	return nil
}

// Wait waits up to timeout for the process to exit and returns its exit
// code, which is -1 when a signal killed it.
func (p *Process) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		if p.waitErr != nil {
			return p.exitCode, fmt.Errorf("wait for %s: %w", p.name, p.waitErr)
		}
		return p.exitCode, nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s still running after %v", p.name, timeout)
	}
}

// WaitForOutput waits up to timeout for the process to print substring,
// and fails the test, showing the output, if it does not or if it exits
// first.
func (p *Process) WaitForOutput(t testing.TB, substring string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.Output(), substring) {
			return
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), substring) {
				return
			}
			t.Fatalf("testenv: %s exited with code %d before printing %q; output:\n%s", p.name, p.exitCode, substring, p.Output())
		case <-deadline:
			t.Fatalf("testenv: %s did not print %q within %v; output:\n%s", p.name, substring, timeout, p.Output())
		case <-tick.C:
		}
	}
}

// outputBuffer collects a process's output while tests read it.
type outputBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *outputBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *outputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return port
}
