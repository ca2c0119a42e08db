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
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/qicore/qiflow/internal/devenv"
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
	// pgAdminTimeout bounds one administrative statement such as CREATE
	// DATABASE.
	pgAdminTimeout = 30 * time.Second
)

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

// PostmasterPID returns the process ID of the postmaster of the shared
// cluster behind Database, starting the cluster if no test has yet, or 0
// when Database uses the server named by QIFLOW_TEST_DATABASE_URL, whose
// processes may not be this machine's. Benchmarks read the CPU time of
// PostgreSQL's processes from /proc with it.
func PostmasterPID(t testing.TB) int {
	t.Helper()
	if os.Getenv(EnvDatabaseURL) != "" {
		return 0
	}
	shared.once.Do(func() { shared.cluster, shared.err = startCluster() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.cluster.PID()
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
// tuned for speed rather than durability. It is a devenv.Cluster with
// test-friendly methods.
//
// The postmaster runs as a child of the test process and gets SIGQUIT
// (immediate shutdown) when that process dies, so a test binary killed by
// a timeout does not leave a cluster running; only its temporary
// directory remains.
type Cluster struct {
	pg *devenv.Cluster
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
func (c *Cluster) URL(db string) string { return c.pg.URL(db) }

// CreateDatabase creates a fresh, empty database on this cluster, drops it
// when the test ends, and returns its URL. A test may end with the cluster
// stopped; the database then goes with the cluster.
func (c *Cluster) CreateDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, c.URL("postgres"), c.pg.Running)
}

// PID returns the process ID of the running postmaster, or 0 when the
// cluster is stopped.
func (c *Cluster) PID() int { return c.pg.PID() }

// Stop shuts the cluster down the way an operator would (fast shutdown:
// connections are terminated, data is kept). Start brings it back.
func (c *Cluster) Stop(t testing.TB) {
	t.Helper()
	if err := c.pg.Stop(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Start starts a stopped cluster again on the same port with the same
// data, and returns once it accepts connections.
func (c *Cluster) Start(t testing.TB) {
	t.Helper()
	if err := c.pg.Start(); err != nil {
		t.Fatalf("testenv: start PostgreSQL: %v", err)
	}
}

// startCluster creates a cluster in a new temporary directory and starts
// it on a free port.
func startCluster() (*Cluster, error) {
	pg, err := devenv.StartCluster()
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	return &Cluster{pg: pg}, nil
}

// close stops the cluster at once and removes its files.
func (c *Cluster) close() error { return c.pg.Close() }

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
