// Package devenv starts throwaway services on this machine for development,
// demos and tests: a PostgreSQL cluster run from the system's binaries,
// listening on 127.0.0.1 only. Unlike internal/testenv it does not depend
// on package testing, so commands such as `qiflow dev` can use it.
package devenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// pgStartTimeout bounds how long a postmaster may take to accept
	// connections, crash recovery included.
	pgStartTimeout = 60 * time.Second
	// pgStopTimeout bounds a shutdown before the postmaster is killed.
	pgStopTimeout = 30 * time.Second
)

// ErrPGNotFound is returned when neither PATH nor /usr/lib/postgresql holds
// the server binaries. Its text tells a developer how to fix the machine.
var ErrPGNotFound = errors.New("PostgreSQL server binaries not found (initdb, postgres). Install them: apt-get install -y postgresql (or run `make test` or `make demo` as root, which installs them)")

// ErrPortInUse marks a start that lost its port to another process. On a
// free port of its own choosing, StartCluster retries on another one.
var ErrPortInUse = errors.New("port already in use")

// Cluster is a throwaway PostgreSQL cluster owned by this process: trust
// authentication for user postgres, listening on 127.0.0.1 only, tuned for
// speed rather than durability. Its methods are safe for concurrent use.
//
// The postmaster runs as a child of this process and gets SIGQUIT
// (immediate shutdown) when the process dies, so a process that is killed
// does not leave a cluster running; only its temporary directory remains.
type Cluster struct {
	binDir  string              // holds initdb and postgres
	dir     string              // the socket, the log and data/
	cred    *syscall.Credential // whom to run as when we are root
	preload bool                // whether timescaledb.so is installed
	port    int

	mu     sync.Mutex
	proc   *exec.Cmd     // the running postmaster, nil when stopped
	exited chan struct{} // closed when proc has exited
}

// StartCluster creates a cluster in a new temporary directory, starts it on
// a free port and returns once it accepts connections. It preloads
// TimescaleDB when timescaledb.so is installed. As root it runs PostgreSQL
// as the postgres OS user, since PostgreSQL refuses to run as root. The
// caller must Close the cluster.
func StartCluster() (*Cluster, error) { return StartClusterOn(0) }

// StartClusterOn is StartCluster on port, or on a free port when port is
// 0. A port that another process holds is an error that wraps
// ErrPortInUse.
func StartClusterOn(port int) (*Cluster, error) {
	binDir, err := findPGBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "qiflow-pg-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c := &Cluster{binDir: binDir, dir: dir, cred: cred, preload: timescaleInstalled(binDir)}
	if err := c.create(); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	// Another process may take the free port before the postmaster binds
	// it; a couple of fresh ports make that race harmless.
	for attempt := 1; ; attempt++ {
		c.port = port
		if port == 0 {
			c.port, err = FreePort()
		}
		if err == nil {
			err = c.Start()
		}
		if err == nil {
			return c, nil
		}
		if attempt == 3 || port != 0 || !errors.Is(err, ErrPortInUse) {
			return nil, errors.Join(fmt.Errorf("start PostgreSQL: %w", err), c.Close())
		}
	}
}

// URL returns the libpq URL of database db on this cluster.
func (c *Cluster) URL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     fmt.Sprintf("127.0.0.1:%d", c.port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// TimescalePreloaded reports whether the cluster preloads timescaledb.so,
// so that CREATE EXTENSION timescaledb works in its databases.
func (c *Cluster) TimescalePreloaded() bool { return c.preload }

// CreateDatabase creates the database name, unless it exists, and returns
// its URL. name must be a plain SQL identifier.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("create database %s: %w", name, err)
		}
	}
	return c.URL(name), nil
}

// PID returns the process ID of the running postmaster, or 0 when the
// cluster is stopped. Benchmarks read the CPU time of the postmaster and its
// children (the backends and background workers) from /proc with it.
func (c *Cluster) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.Process.Pid
}

// Running reports whether the postmaster is up.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil
}

// Stop shuts the cluster down the way an operator would (fast shutdown:
// connections are terminated, data is kept). Start brings it back.
func (c *Cluster) Stop() error {
	if err := c.stop(syscall.SIGINT); err != nil {
		return fmt.Errorf("stop PostgreSQL: %w", err)
	}
	return nil
}

// Close stops the cluster at once (immediate shutdown) and removes its
// files. It may be called on a stopped cluster.
func (c *Cluster) Close() error {
	return errors.Join(c.stop(syscall.SIGQUIT), os.RemoveAll(c.dir))
}

// findPGBinDir returns the directory that holds initdb and postgres: the
// one initdb on PATH resolves to, else the highest-versioned
// /usr/lib/postgresql/*/bin.
func findPGBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && hasPGServer(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, dir := range dirs {
		if hasPGServer(dir) {
			return dir, nil
		}
	}
	return "", ErrPGNotFound
}

// hasPGServer reports whether dir holds the server binaries we run.
func hasPGServer(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// postgresCredential returns whom to run initdb and postgres as: they
// refuse to run as root, so as root we run them as the postgres OS user.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL refuses to run as root, and there is no postgres OS user to run it as (apt-get install -y postgresql creates one): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of OS user postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of OS user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// timescaleInstalled reports whether timescaledb.so sits in the library
// directory of the PostgreSQL in binDir.
func timescaleInstalled(binDir string) bool {
	dirs := []string{filepath.Join(binDir, "..", "lib")}
	if out, err := exec.Command(filepath.Join(binDir, "pg_config"), "--pkglibdir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "timescaledb.so")); err == nil {
			return true
		}
	}
	return false
}

// FreePort asks the kernel for an unused loopback port and releases it.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// dataDir is where the cluster keeps its data.
func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// logPath is where the postmaster writes its log.
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// create runs initdb and writes the settings every start uses.
func (c *Cluster) create() error {
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("hand %s to OS user postgres: %w", c.dir, err)
		}
	}
	cmd := c.command("initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	settings := []string{
		"listen_addresses = '127.0.0.1'",
		fmt.Sprintf("unix_socket_directories = '%s'", c.dir),
		"max_connections = 200",
		"shared_buffers = 128MB",
		"fsync = off",
		"synchronous_commit = off",
		"full_page_writes = off",
		"wal_level = minimal",
		"max_wal_senders = 0",
		"timezone = 'UTC'",
	}
	if c.preload {
		settings = append(settings,
			"shared_preload_libraries = 'timescaledb'",
			"timescaledb.telemetry_level = off",
			// Every database gets its own scheduler (tests make many);
			// leave room for them.
			"max_worker_processes = 64",
			"timescaledb.max_background_workers = 48",
		)
	}
	conf := filepath.Join(c.dataDir(), "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", conf, err)
	}
	_, err = f.WriteString("\n# qiflow devenv\n" + strings.Join(settings, "\n") + "\n")
	if err := errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("write %s: %w", conf, err)
	}
	return nil
}

// command prepares a PostgreSQL binary to run in the cluster directory as
// the cluster's OS user, without PG* variables that could redirect it.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

// Start starts a stopped cluster again on the same port with the same
// data, and returns once it accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("cluster is already running")
	}
	logFile, err := os.OpenFile(c.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open postgres log: %w", err)
	}
	defer logFile.Close()
	logStart, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("seek postgres log: %w", err)
	}
	cmd := c.command("postgres", "-D", c.dataDir(), "-p", strconv.Itoa(c.port))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	// Its own process group keeps the postmaster out of the terminal's
	// foreground group: Ctrl-C then reaches only this process, which drains
	// its pipelines into the database before it stops the cluster.
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run postgres: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status shows in the log
		close(exited)
	}()
	c.proc, c.exited = cmd, exited

	ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-exited:
			c.proc = nil
			log := c.logSince(logStart)
			if strings.Contains(log, "already in use") {
				return fmt.Errorf("postgres on port %d: %w; log:\n%s", c.port, ErrPortInUse, log)
			}
			return fmt.Errorf("postgres exited during startup; log:\n%s", log)
		case <-ctx.Done():
			return fmt.Errorf("postgres did not accept connections within %v: %w; log:\n%s", pgStartTimeout, err, c.logSince(logStart))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logSince returns what the postmaster logged from byte offset off on.
func (c *Cluster) logSince(off int64) string {
	b, err := os.ReadFile(c.logPath())
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	if off > int64(len(b)) {
		off = 0
	}
	return string(b[off:])
}

// stop signals the postmaster (SIGINT: fast shutdown, SIGQUIT: immediate)
// and waits for it to exit, killing it if it takes too long.
func (c *Cluster) stop(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return nil
	}
	proc := c.proc
	c.proc = nil
	if err := proc.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(pgStopTimeout):
		_ = proc.Process.Kill() // it may exit on its own meanwhile
		<-c.exited
		return fmt.Errorf("postgres did not shut down within %v and was killed", pgStopTimeout)
	}
}
