package pipelines_test

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

// stopTimed sends SIGTERM and returns how long qiflow took to exit, and its
// exit code.
func stopTimed(t *testing.T, proc qiflowProcess) (time.Duration, int) {
	t.Helper()
	began := time.Now()
	require.NoError(t, proc.Signal(syscall.SIGTERM))
	code, err := proc.Wait(60 * time.Second)
	require.NoError(t, err)
	took := time.Since(began)
	t.Logf("SIGTERM to exit: %v (code %d)", took.Round(time.Millisecond), code)
	return took, code
}

// finishAndCount runs prices.yaml again until the group committed the whole
// topic, and returns the rows of crypto_prices.
func finishAndCount(t *testing.T, broker *testenv.Broker, dsn string) int {
	t.Helper()
	again := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 180*time.Second, again)
	stop(t, again)
	return rowCount(t, dsn, "crypto_prices")
}

func TestStopWithABacklogTakesOnlyTheWritesInFlight(t *testing.T) {
	const n = 200_000
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	broker.ProduceN(t, "crypto-prices", n, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })

	proc := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > n/10 }, 90*time.Second, 10*time.Millisecond,
		"no rows arrived:\n%s", proc.Output())
	took, code := stopTimed(t, proc)
	atStop := rowCount(t, dsn, "crypto_prices")
	committed := sum(broker.CommittedOffsets(t, "qiflow-prices", "crypto-prices"))
	t.Logf("stopped with %d of %d rows written, %d committed", atStop, n, committed)

	assert.Equal(t, 0, code, "SIGTERM stops qiflow cleanly:\n%s", proc.Output())
	assert.Less(t, atStop, n, "the stop came with a backlog")
	assert.Less(t, took, 3*time.Second, "a stop waits for the writes in flight only (it waited revoke_timeout, 10s, before)")
	assert.NotContains(t, proc.Output(), "still in flight", "no wait for acks Benthos never sends")
	assert.LessOrEqual(t, committed, int64(atStop), "only written messages are committed")
	assert.Positive(t, committed, "what was written is committed")
	assert.Equal(t, n, finishAndCount(t, broker, dsn), "every message is one row after the restart")
}

func TestStopWithTheDatabaseDownExitsWithinTheDrain(t *testing.T) {
	const n = 100_000
	broker := newBroker(t)
	cluster := testenv.NewCluster(t)
	dsn := withTables(t, cluster.CreateDatabase(t))
	broker.ProduceN(t, "crypto-prices", n, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })

	proc := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > n/10 }, 90*time.Second, 10*time.Millisecond,
		"no rows arrived:\n%s", proc.Output())
	cluster.Stop(t)
	require.Eventually(t, func() bool { return strings.Contains(proc.Output(), "Retrying") }, 20*time.Second, 20*time.Millisecond,
		"the output never retried:\n%s", proc.Output())
	took, code := stopTimed(t, proc)

	assert.Equal(t, 0, code, "SIGTERM stops qiflow cleanly:\n%s", proc.Output())
	assert.Less(t, took, 3*time.Second, "a stop interrupts the retry waits (it took 20s before)")
	cluster.Start(t)
	assert.Equal(t, n, finishAndCount(t, broker, dsn), "nothing unwritten was committed: every message is one row")
}

func TestStopWithTheBrokerDownExitsWithinTheDrain(t *testing.T) {
	const n = 100_000
	broker := newBroker(t, testenv.WithDataDir(t.TempDir()))
	dsn := withTables(t, testenv.Database(t))
	broker.ProduceN(t, "crypto-prices", n, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })

	proc := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > n/10 }, 90*time.Second, 10*time.Millisecond,
		"no rows arrived:\n%s", proc.Output())
	broker.Stop(t)
	time.Sleep(2 * time.Second)
	took, code := stopTimed(t, proc)

	assert.Equal(t, 0, code, "SIGTERM stops qiflow cleanly:\n%s", proc.Output())
	assert.Less(t, took, 3*time.Second, "a stop does not wait out the broker's absence")
	broker.Start(t)
	assert.Equal(t, n, finishAndCount(t, broker, dsn), "every message is one row after the restart")
}

// rowWatch polls the row count of a table and remembers when it grew.
type rowWatch struct {
	mu     sync.Mutex
	growth []time.Time
	stop   context.CancelFunc
	done   chan struct{}
}

func watchRows(t *testing.T, dsn, table string) *rowWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &rowWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		last := -1
		for ctx.Err() == nil {
			if n := rowCount(t, dsn, table); n > last {
				if last >= 0 {
					w.mu.Lock()
					w.growth = append(w.growth, time.Now())
					w.mu.Unlock()
				}
				last = n
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-w.done })
	return w
}

// grewAfter reports whether the table grew after at.
func (w *rowWatch) grewAfter(at time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.growth) > 0 && w.growth[len(w.growth)-1].After(at)
}

// longestPause returns the longest time between two growths of the table
// within [from, to].
func (w *rowWatch) longestPause(from, to time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	prev := from
	for _, at := range w.growth {
		if at.Before(from) {
			continue
		}
		if at.After(to) {
			break
		}
		longest = max(longest, at.Sub(prev))
		prev = at
	}
	return longest
}

// produceSteadily produces price messages from start on, every 50 ms, until
// the returned function is called; it returns how many it produced.
func produceSteadily(t *testing.T, broker *testenv.Broker, start int) func() int {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		i := start
		for ctx.Err() == nil {
			broker.ProduceN(t, "crypto-prices", 500, func(j int) *kgo.Record { return &kgo.Record{Value: priceMessage(i + j)} })
			i += 500
			time.Sleep(50 * time.Millisecond)
		}
		done <- i - start
	}()
	return func() int { cancel(); return <-done }
}

func TestReloadDrainUnderLoadTakesTheWritesInFlight(t *testing.T) {
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	const backlog = 100_000
	broker.ProduceN(t, "crypto-prices", backlog, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })
	w := runWatched(t, env(broker, dsn), "prices.yaml")
	rows := watchRows(t, dsn, "crypto_prices")
	stopProducing := produceSteadily(t, broker, backlog)

	for i := range 3 {
		require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > (i+1)*backlog/10 }, 60*time.Second, 20*time.Millisecond)
		began := time.Now()
		rec := w.saveAndWait(t, validEdit(w.base, i))
		require.Equal(t, "applied", rec.Result, "%+v", rec)
		require.Eventually(t, func() bool { return rows.grewAfter(rec.At) }, 30*time.Second, 20*time.Millisecond)
		pause := rows.longestPause(began, time.Now())
		t.Logf("reload %d: drain %.3fs, gap %.3fs, longest pause in rows %v", i, rec.DrainSeconds, rec.GapSeconds, pause.Round(time.Millisecond))
		assert.Less(t, rec.DrainSeconds, 1.5, "reload %d: a drain takes the writes in flight, not revoke_timeout", i)
		assert.Less(t, pause, 5*time.Second, "reload %d: rows pause only for the swap", i)
	}
	produced := stopProducing()
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 180*time.Second, w.qiflowProcess)
	assert.Equal(t, backlog+produced, rowCount(t, dsn, "crypto_prices"), "every message is exactly one row")
	assert.NotContains(t, w.Output(), "still in flight")
	stop(t, w.qiflowProcess)
}

func TestRolledBackReloadReleasesItsPartitionsAtOnce(t *testing.T) {
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	w := runWatched(t, env(broker, dsn), "prices.yaml")
	rows := watchRows(t, dsn, "crypto_prices")
	stopProducing := produceSteadily(t, broker, 0)
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > 5_000 }, 60*time.Second, 20*time.Millisecond)

	began := time.Now()
	rec := w.saveAndWait(t, unreachableDatabase(w.base))
	require.Equal(t, "rolled_back", rec.Result, "%+v", rec)
	require.Eventually(t, func() bool { return rows.grewAfter(rec.At) }, 30*time.Second, 20*time.Millisecond, "rows never resumed after the rollback:\n%s", w.Output())
	pause := rows.longestPause(began, time.Now())
	t.Logf("rolled back: gap_seconds %.3f, longest pause in rows %v (start timeout 2s)", rec.GapSeconds, pause.Round(time.Millisecond))

	assert.Less(t, pause.Seconds(), rec.GapSeconds+1.5, "gap_seconds is the gap rows saw")
	assert.Less(t, pause, 6*time.Second, "the failed candidate releases its partitions at once (about 29s before, with a 20s start timeout)")
	produced := stopProducing()
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 120*time.Second, w.qiflowProcess)
	assert.Equal(t, produced, rowCount(t, dsn, "crypto_prices"), "every message is exactly one row")
	stop(t, w.qiflowProcess)
}

func sum(offsets map[int32]int64) int64 {
	var total int64
	for _, o := range offsets {
		total += o
	}
	return total
}
