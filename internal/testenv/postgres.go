// Package testenv is the harness every qiflow test uses: throwaway
// PostgreSQL databases, an in-process kfake Kafka broker over TCP, and
// helpers that build and run the real qiflow binary.
//
// A package that uses it calls Main from its TestMain, so that the shared
// PostgreSQL cluster and the built binaries are removed when its tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Environment variables that change how the harness finds PostgreSQL.
const (
	// EnvDatabaseURL names a PostgreSQL server (a postgres:// URL to a
	// database a superuser can connect to) on which Database creates its
	// databases instead of starting a throwaway cluster.
	EnvDatabaseURL = "QIFLOW_TEST_DATABASE_URL"
	// EnvRequireTimescale, set to "1", turns RequireTimescale's skip into a
	// failure, for machines where TimescaleDB must be present.
	EnvRequireTimescale = "QIFLOW_REQUIRE_TIMESCALEDB"
)

const (
	// pgStartTimeout bounds how long a postmaster may take to accept
	// connections, crash recovery included.
	pgStartTimeout = 60 * time.Second
	// pgStopTimeout bounds a shutdown before the postmaster is killed.
	pgStopTimeout = 30 * time.Second
	// pgAdminTimeout bounds one administrative statement such as CREATE
	// DATABASE.
	pgAdminTimeout = 30 * time.Second
)

// errPGNotFound is reported verbatim: it tells a developer how to fix the
// machine.
var errPGNotFound = errors.New("PostgreSQL server binaries not found (initdb, pg_ctl). Install them: apt-get install -y postgresql (or run `make test` as root, which installs them)")

// errPortInUse marks a start that lost its port to another process, which
// is worth retrying on a different port.
var errPortInUse = errors.New("port already in use")

// shared is the cluster behind Database, started by the first test that
// needs it and stopped by Main.
var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// Database returns the URL of a fresh, empty database created for this
// test and dropped, with its connections terminated, when the test ends.
// The database lives on a throwaway cluster shared by the whole test
// process, or on the server named by QIFLOW_TEST_DATABASE_URL when set.
func Database(t testing.TB) string {
	t.Helper()
	if admin := os.Getenv(EnvDatabaseURL); admin != "" {
		return newDatabase(t, admin, func() bool { return true })
	}
	shared.once.Do(func() { shared.cluster, shared.err = startCluster() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cluster.CreateDatabase(t)
}

// Main runs the package's tests, then stops the shared PostgreSQL cluster,
// removes its files and the binaries BuildBinary made, and exits with the
// tests' exit code. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	// Marking the once as done keeps a straggling goroutine from starting
	// a cluster nobody would stop.
	shared.once.Do(func() {})
	if shared.cluster != nil {
		if err := shared.cluster.close(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		}
	}
	if err := removeBuilds(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
	}
	os.Exit(code)
}

// Cluster is a throwaway PostgreSQL cluster owned by this test process:
// trust authentication for user postgres, listening on 127.0.0.1 only,
// tuned for speed rather than durability.
//
// The postmaster runs as a child of the test process and gets SIGQUIT
// (immediate shutdown) when that process dies, so a test binary killed by
// a timeout does not leave a cluster running; only its temporary
// directory remains.
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

// NewCluster starts a cluster of its own for a test that must stop and
// start the database, and removes it when the test ends.
func NewCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.close(); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return c
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

// CreateDatabase creates a fresh, empty database on this cluster, drops it
// when the test ends, and returns its URL. A test may end with the cluster
// stopped; the database then goes with the cluster.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, c.URL("postgres"), c.running)
}

// running reports whether the postmaster is up.
func (c *Cluster) running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil
}

// Stop shuts the cluster down the way an operator would (fast shutdown:
// connections are terminated, data is kept). Start brings it back.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.stop(syscall.SIGINT); err != nil {
		t.Fatalf("testenv: stop PostgreSQL: %v", err)
	}
}

// Start starts a stopped cluster again on the same port with the same
// data, and returns once it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.start(); err != nil {
		t.Fatalf("testenv: start PostgreSQL: %v", err)
	}
}

// startCluster creates a cluster in a new temporary directory and starts
// it on a free port.
func startCluster() (*Cluster, error) {
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
		return nil, fmt.Errorf("testenv: create cluster directory: %w", err)
	}
	c := &Cluster{binDir: binDir, dir: dir, cred: cred, preload: timescaleInstalled(binDir)}
	if err := c.create(); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	// Another process may take the free port before the postmaster binds
	// it; a couple of fresh ports make that race harmless.
	for attempt := 1; ; attempt++ {
		if c.port, err = freePort(); err == nil {
			err = c.start()
		}
		if err == nil {
			return c, nil
		}
		if attempt == 3 || !errors.Is(err, errPortInUse) {
			return nil, errors.Join(fmt.Errorf("testenv: start PostgreSQL: %w", err), c.close())
		}
	}
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
	return "", errPGNotFound
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
		return nil, fmt.Errorf("testenv: tests run as root, PostgreSQL refuses to run as root, and there is no postgres OS user to run it as (apt-get install -y postgresql creates one): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testenv: uid of OS user postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("testenv: gid of OS user postgres: %w", err)
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

// dataDir is where the cluster keeps its data.
func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// logPath is where the postmaster writes its log.
func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// create runs initdb and writes the settings every start uses.
func (c *Cluster) create() error {
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return fmt.Errorf("testenv: hand %s to OS user postgres: %w", c.dir, err)
		}
	}
	cmd := c.command("initdb", "-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("testenv: initdb: %w\n%s", err, out)
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
			// Every test database gets its own scheduler; leave room for them.
			"max_worker_processes = 64",
			"timescaledb.max_background_workers = 48",
		)
	}
	conf := filepath.Join(c.dataDir(), "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("testenv: open %s: %w", conf, err)
	}
	_, err = f.WriteString("\n# qiflow testenv\n" + strings.Join(settings, "\n") + "\n")
	if err := errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("testenv: write %s: %w", conf, err)
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

// start runs the postmaster and waits until it accepts connections.
func (c *Cluster) start() error {
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
				return fmt.Errorf("postgres on port %d: %w; log:\n%s", c.port, errPortInUse, log)
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

// close stops the cluster at once and removes its files.
func (c *Cluster) close() error {
	return errors.Join(c.stop(syscall.SIGQUIT), os.RemoveAll(c.dir))
}

// newDatabase creates a database named qiflow_test_<random> on the server
// adminURL points to, drops it when the test ends if serverUp says the
// server still runs, and returns its URL.
func newDatabase(t testing.TB, adminURL string, serverUp func() bool) string {
	t.Helper()
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("testenv: %s must be a postgres:// URL", EnvDatabaseURL)
	}
	suffix := make([]byte, 8)
	_, _ = rand.Read(suffix) // crypto/rand.Read never fails
	name := "qiflow_test_" + hex.EncodeToString(suffix)
	if err := execAdmin(adminURL, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if !serverUp() {
			return
		}
		if err := execAdmin(adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

// execAdmin runs one statement on its own connection to adminURL.
func execAdmin(adminURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), pgAdminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	_, err = conn.Exec(ctx, sql)
	return errors.Join(err, conn.Close(ctx))
}

// TimescaleAvailable reports whether the TimescaleDB extension can be
// created in the database at dsn, and creates it if so. Why it cannot is
// logged; failing to reach the database fails the test.
func TimescaleAvailable(t testing.TB, dsn string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), pgAdminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("testenv: connect to check for TimescaleDB: %v", err)
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS timescaledb")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		t.Logf("testenv: TimescaleDB unavailable: %v", err)
		return false
	}
	if err != nil {
		t.Fatalf("testenv: create extension timescaledb: %v", err)
	}
	return true
}

// RequireTimescale creates the TimescaleDB extension in the database at
// dsn, or skips the test when it is not installed; with
// QIFLOW_REQUIRE_TIMESCALEDB=1 the test fails instead.
func RequireTimescale(t testing.TB, dsn string) {
	t.Helper()
	if TimescaleAvailable(t, dsn) {
		return
	}
	if os.Getenv(EnvRequireTimescale) == "1" {
		t.Fatal("TimescaleDB extension not installed in this PostgreSQL, and " + EnvRequireTimescale + "=1 requires it")
	}
	t.Skip("TimescaleDB extension not installed in this PostgreSQL; skipping. Set " + EnvRequireTimescale + "=1 to make this a failure")
}
