package testenv

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// adminURL is the database Database's databases are created from.
func adminURL(t *testing.T) string {
	if u := os.Getenv(EnvDatabaseURL); u != "" {
		return u
	}
	Database(t) // makes sure the shared cluster runs
	return shared.cluster.URL("postgres")
}

func dbName(t *testing.T, dsn string) string {
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	return strings.TrimPrefix(u.Path, "/")
}

func TestDatabasesAreDistinctAndEmpty(t *testing.T) {
	t.Parallel()
	a, b := Database(t), Database(t)
	require.NotEqual(t, dbName(t, a), dbName(t, b))

	ctx := context.Background()
	connA, connB := connect(t, a), connect(t, b)
	for _, conn := range []*pgx.Conn{connA, connB} {
		var tables int
		require.NoError(t, conn.QueryRow(ctx,
			`SELECT count(*) FROM information_schema.tables
			 WHERE table_schema NOT IN ('pg_catalog', 'information_schema')`).Scan(&tables))
		assert.Zero(t, tables)
	}

	_, err := connA.Exec(ctx, "CREATE TABLE only_in_a (id int); INSERT INTO only_in_a VALUES (1)")
	require.NoError(t, err)
	var inB *string
	require.NoError(t, connB.QueryRow(ctx, "SELECT to_regclass('public.only_in_a')::text").Scan(&inB))
	assert.Nil(t, inB, "a table made in one database is visible in another")
}

func TestDatabaseIsDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	admin := adminURL(t)
	var name string
	var leftOpen *pgx.Conn
	t.Run("use", func(t *testing.T) {
		dsn := Database(t)
		name = dbName(t, dsn)
		// A connection still open at cleanup must not keep the database.
		var err error
		leftOpen, err = pgx.Connect(context.Background(), dsn)
		require.NoError(t, err)
	})
	defer leftOpen.Close(context.Background())

	var exists bool
	require.NoError(t, connect(t, admin).QueryRow(context.Background(),
		"SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)", name).Scan(&exists))
	assert.False(t, exists, "database %s outlived its test", name)
}

func TestClusterStopStart(t *testing.T) {
	t.Parallel()
	c := NewCluster(t)
	dsn := c.CreateDatabase(t)
	ctx := context.Background()
	conn := connect(t, dsn)
	_, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('survives')")
	require.NoError(t, err)

	c.Stop(t)
	down, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = pgx.Connect(down, dsn)
	require.Error(t, err, "connecting to a stopped cluster")

	c.Start(t)
	var v string
	require.NoError(t, connect(t, dsn).QueryRow(ctx, "SELECT v FROM kept").Scan(&v))
	assert.Equal(t, "survives", v)

	c.Stop(t) // a test may end with its cluster down
}

func TestPostmasterPIDIsTheParentOfEveryBackend(t *testing.T) {
	if os.Getenv(EnvDatabaseURL) != "" {
		t.Skip("the server of " + EnvDatabaseURL + " is not this process's cluster")
	}
	t.Parallel()
	conn := connect(t, Database(t))
	var backend int
	require.NoError(t, conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend))
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", backend))
	if err != nil {
		t.Skipf("no /proc on this system: %v", err)
	}
	// After the command, in parentheses, come the state and the parent's PID.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	require.GreaterOrEqual(t, len(fields), 2)
	assert.Equal(t, fields[1], strconv.Itoa(PostmasterPID(t)))
}

// recordingTB stands in for a test to observe how a helper ends it.
type recordingTB struct {
	testing.TB
	mu      sync.Mutex
	skipped bool
	failed  bool
	msg     string
}

func (r *recordingTB) end(skipped bool, msg string) {
	r.mu.Lock()
	r.skipped, r.failed, r.msg = skipped, !skipped, msg
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recordingTB) Skip(args ...any)                 { r.end(true, fmt.Sprint(args...)) }
func (r *recordingTB) Skipf(format string, args ...any) { r.end(true, fmt.Sprintf(format, args...)) }
func (r *recordingTB) Fatal(args ...any)                { r.end(false, fmt.Sprint(args...)) }
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.end(false, fmt.Sprintf(format, args...))
}

// runRecorded runs fn as a test would and reports how it ended.
func runRecorded(t *testing.T, fn func(tb testing.TB)) *recordingTB {
	r := &recordingTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r
}

func TestRequireTimescale(t *testing.T) {
	dsn := Database(t)
	if TimescaleAvailable(t, dsn) {
		RequireTimescale(t, dsn)
		var n int
		require.NoError(t, connect(t, dsn).QueryRow(context.Background(),
			"SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").Scan(&n))
		assert.Equal(t, 1, n)
		return
	}
	t.Run("skips without the extension", func(t *testing.T) {
		t.Setenv(EnvRequireTimescale, "")
		r := runRecorded(t, func(tb testing.TB) { RequireTimescale(tb, dsn) })
		assert.True(t, r.skipped)
		assert.Equal(t, "TimescaleDB extension not installed in this PostgreSQL; skipping. Set QIFLOW_REQUIRE_TIMESCALEDB=1 to make this a failure", r.msg)
	})
	t.Run("fails when required", func(t *testing.T) {
		t.Setenv(EnvRequireTimescale, "1")
		r := runRecorded(t, func(tb testing.TB) { RequireTimescale(tb, dsn) })
		assert.True(t, r.failed)
		assert.Contains(t, r.msg, "QIFLOW_REQUIRE_TIMESCALEDB=1")
	})
}

func TestBrokerProduceNConsumeAll(t *testing.T) {
	t.Parallel()
	const n = 10_000
	b := NewBroker(t)
	b.CreateTopic(t, "events", 12)
	b.ProduceN(t, "events", n, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}
	})

	ends := b.EndOffsets(t, "events")
	require.Len(t, ends, 12)
	var total int64
	for _, end := range ends {
		total += end
	}
	assert.EqualValues(t, n, total)

	recs := b.ConsumeAll(t, "events")
	require.Len(t, recs, n)
	seen := make(map[string]bool, n)
	next := make(map[int32]int64)
	for _, r := range recs {
		assert.Equal(t, next[r.Partition], r.Offset, "partition %d", r.Partition)
		next[r.Partition] = r.Offset + 1
		seen[string(r.Value)] = true
	}
	assert.Len(t, seen, n)
	assert.Equal(t, ends, map[int32]int64(next))
}

func TestBrokerSASL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mechanism string
		wrong     sasl.Mechanism
	}{
		{"PLAIN", plain.Auth{User: "qiflow", Pass: "wrong"}.AsMechanism()},
		{"SCRAM-SHA-256", scram.Auth{User: "qiflow", Pass: "wrong"}.AsSha256Mechanism()},
		{"SCRAM-SHA-512", scram.Auth{User: "qiflow", Pass: "wrong"}.AsSha512Mechanism()},
	} {
		t.Run(tc.mechanism, func(t *testing.T) {
			t.Parallel()
			b := NewBroker(t, WithSASL(tc.mechanism, "qiflow", "s3cret"), WithTopics(1, "secured"))

			intruder, err := kgo.NewClient(kgo.SeedBrokers(b.Seeds()...), kgo.SASL(tc.wrong))
			require.NoError(t, err)
			defer intruder.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// kfake hangs up on a failed authentication, so the client sees
			// EOF rather than SASL_AUTHENTICATION_FAILED.
			assert.Error(t, intruder.Ping(ctx), "a wrong password was accepted")

			b.Produce(t, "secured", &kgo.Record{Value: []byte("hello")})
			recs := b.ConsumeAll(t, "secured")
			require.Len(t, recs, 1)
			assert.Equal(t, "hello", string(recs[0].Value))
		})
	}
}

func TestBrokerRestartKeepsRecordsAndOffsets(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithDataDir(t.TempDir()), WithTopics(3, "orders"))
	b.ProduceN(t, "orders", 300, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte(strconv.Itoa(i)), Value: []byte("order")}
	})
	ctx := context.Background()
	committed := kadm.Offsets{}
	for p, end := range b.EndOffsets(t, "orders") {
		committed.AddOffset("orders", p, end, -1)
	}
	resps, err := b.Admin(t).CommitOffsets(ctx, "billing", committed)
	require.NoError(t, err)
	require.NoError(t, resps.Error())
	wantOffsets := b.CommittedOffsets(t, "billing", "orders")
	require.Len(t, wantOffsets, 3)
	client := b.Client(t) // made before the restart, used after it

	seeds := b.SeedList()
	b.Restart(t)
	assert.Equal(t, seeds, b.SeedList())
	assert.Len(t, b.ConsumeAll(t, "orders"), 300)
	assert.Equal(t, wantOffsets, b.CommittedOffsets(t, "billing", "orders"))

	produceCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, client.ProduceSync(produceCtx, &kgo.Record{Topic: "orders", Value: []byte("after")}).FirstErr())
}

func TestBrokerStopStart(t *testing.T) {
	t.Parallel()
	b := NewBroker(t, WithDataDir(t.TempDir()), WithBrokers(2), WithTopics(2, "t"))
	b.Produce(t, "t", &kgo.Record{Value: []byte("before")})
	b.Stop(t)
	assert.Nil(t, b.Cluster())
	for _, seed := range b.Seeds() {
		_, err := net.DialTimeout("tcp", seed, time.Second)
		assert.Error(t, err, "broker %s still listening", seed)
	}
	b.Start(t)
	b.Produce(t, "t", &kgo.Record{Value: []byte("after")})
	assert.Len(t, b.ConsumeAll(t, "t"), 2)
}

func TestProcess(t *testing.T) {
	t.Parallel()
	bin := BuildBinary(t, "./internal/testenv/testdata/sigecho")
	assert.Equal(t, bin, BuildBinary(t, "./internal/testenv/testdata/sigecho"), "built twice")

	t.Run("SIGTERM", func(t *testing.T) {
		p := StartProcess(t, bin, []string{"SIGECHO_GREETING=hi"})
		p.WaitForOutput(t, "ready hi", 10*time.Second)
		p.WaitForOutput(t, "on stderr", 10*time.Second)
		require.NoError(t, p.Signal(syscall.SIGTERM))
		code, err := p.Wait(10 * time.Second)
		require.NoError(t, err)
		assert.Equal(t, 3, code)
		assert.Contains(t, p.Output(), "got SIGTERM")
	})
	t.Run("Kill", func(t *testing.T) {
		p := StartProcess(t, bin, nil)
		p.WaitForOutput(t, "ready", 10*time.Second)
		_, err := p.Wait(50 * time.Millisecond)
		require.Error(t, err, "still running")
		require.NoError(t, p.Kill())
		code, err := p.Wait(10 * time.Second)
		require.NoError(t, err)
		assert.Equal(t, -1, code)
		require.NoError(t, p.Kill(), "killing an exited process")
	})
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", FreePort(t)))
	require.NoError(t, err)
	require.NoError(t, l.Close())
}
