package pipelines_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

// The exactly-once example: crypto_prices_log has no key, so every
// consumed message must become exactly one row, a re-send a second one.
const (
	exactlyOncePipeline = "examples/prices_exactly_once.yaml"
	exactlyOnceSchema   = "examples/prices_exactly_once.schema.yaml"
	exactlyOnceGroup    = "qiflow-prices-log"
)

// withLogTable applies the example's schema file, as its header says.
func withLogTable(t *testing.T, dsn string) string {
	t.Helper()
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, "schema", "apply", "-f", exactlyOnceSchema, "--dsn", dsn).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return dsn
}

// logMessage is message i of the exactly-once data set: every 20th repeats
// an earlier message byte for byte (a producer's re-send, which is a
// record of its own here), and every 250th is invalid (a negative price).
func logMessage(i int) []byte {
	switch {
	case i%250 == 249:
		return fmt.Appendf(nil, `{"coinId":"coin-%d","symbol":"C","exchangeId":"binance","usdPrice":"-1","lastUpdated":%d,"source":"test","attribution":"qiflow"}`, i%50, baseMillis)
	case i%20 == 19:
		return priceMessage(i - 7)
	}
	return priceMessage(i)
}

func logInvalid(i int) bool { return i%250 == 249 }

// expectedRows is the multiset of rows messages [0, n) must become, keyed
// as rowMultiset keys them.
func expectedRows(n int) (map[string]int, int) {
	want, invalid := map[string]int{}, 0
	for i := range n {
		if logInvalid(i) {
			invalid++
			continue
		}
		j := i
		if i%20 == 19 {
			j = i - 7
		}
		want[fmt.Sprintf("coin-%d|%d|%d.12345678", j%50, baseMillis+int64(j/50)*1000, 1+j%1000)]++
	}
	return want, invalid
}

// rowMultiset reads crypto_prices_log as a multiset of (coin, time, price).
func rowMultiset(t *testing.T, dsn string) map[string]int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT coin_id || '|' || (extract(epoch FROM last_updated) * 1000)::bigint || '|' || usd_price::text, count(*)
FROM crypto_prices_log GROUP BY 1`)
	require.NoError(t, err)
	got := map[string]int{}
	var key string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&key, &n}, func() error {
		got[key] = n
		return nil
	})
	require.NoError(t, err)
	return got
}

// produceLog produces messages [from, to) of the data set.
func produceLog(t *testing.T, broker *testenv.Broker, from, to int) {
	broker.ProduceN(t, "crypto-prices", to-from, func(i int) *kgo.Record { return &kgo.Record{Value: logMessage(from + i)} })
}

// assertExactlyOnce checks the promise: the table holds exactly the valid
// messages of [0, n), as a multiset, and every invalid one is a dead letter.
func assertExactlyOnce(t *testing.T, broker *testenv.Broker, dsn string, n int) {
	t.Helper()
	want, invalid := expectedRows(n)
	got := rowMultiset(t, dsn)
	total := 0
	for _, c := range want {
		total += c
	}
	assert.Equal(t, total, rowCount(t, dsn, "crypto_prices_log"), "count(*) is the number of valid records consumed")
	if !maps.Equal(want, got) {
		var diff []string
		for k := range maps.Keys(want) {
			if want[k] != got[k] {
				diff = append(diff, fmt.Sprintf("%s: want %d, got %d", k, want[k], got[k]))
			}
		}
		for k := range maps.Keys(got) {
			if _, ok := want[k]; !ok {
				diff = append(diff, fmt.Sprintf("%s: want 0, got %d", k, got[k]))
			}
		}
		slices.Sort(diff)
		t.Errorf("the rows are not the valid messages, once each (%d differences): %v", len(diff), diff[:min(len(diff), 10)])
	}
	// A dead letter can be written twice only by a crash between its write
	// and the commit (docs/exactly-once.md); each invalid message is one at
	// least, and nothing else is one.
	sources := map[string]bool{}
	for _, rec := range broker.ConsumeAll(t, "crypto-prices.dlq") {
		headers := map[string]string{}
		for _, h := range rec.Headers {
			headers[h.Key] = string(h.Value)
		}
		sources[headers[result.HeaderSourcePartition]+"/"+headers[result.HeaderSourceOffset]] = true
	}
	assert.Len(t, sources, invalid, "every invalid message is a dead letter")
}

// waitLogged waits until the table holds more than rows rows.
func waitLogged(t *testing.T, dsn string, rows int, proc qiflowProcess) {
	t.Helper()
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices_log") > rows }, 90*time.Second, 10*time.Millisecond,
		"rows stopped at %d:\n%s", rowCount(t, dsn, "crypto_prices_log"), proc.Output())
}

// wrote reports whether proc has inserted rows, by its /metrics, which may
// not be served yet.
func wrote(proc qiflowProcess) bool {
	resp, err := http.Get("http://" + proc.http + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "qiflow_timescale_rows_inserted_total") && !strings.HasSuffix(line, " 0") {
			return true
		}
	}
	return false
}

func kill(t *testing.T, proc qiflowProcess) {
	t.Helper()
	require.NoError(t, proc.Kill())
	_, err := proc.Wait(10 * time.Second)
	require.NoError(t, err)
}

func TestExactlyOnceThroughTwoSIGKILLs(t *testing.T) {
	const n = 60_000
	broker := newBroker(t)
	dsn := withLogTable(t, testenv.Database(t))
	produceLog(t, broker, 0, n)

	first := qiflow(t, env(broker, dsn), "run", exactlyOncePipeline)
	waitLogged(t, dsn, n/5, first)
	kill(t, first)
	second := qiflow(t, env(broker, dsn), "run", exactlyOncePipeline)
	waitLogged(t, dsn, n/2, second)
	kill(t, second)
	t.Logf("killed twice, with %d rows written", rowCount(t, dsn, "crypto_prices_log"))

	third := qiflow(t, env(broker, dsn), "run", exactlyOncePipeline)
	waitCommitted(t, broker, exactlyOnceGroup, "crypto-prices", 120*time.Second, third)
	stop(t, third)
	assert.Contains(t, third.Output(), "the database's", "partitions start where the database says")
	assertExactlyOnce(t, broker, dsn, n)
}

func TestExactlyOnceThroughARebalanceUnderLoad(t *testing.T) {
	const n = 80_000
	broker := newBroker(t)
	dsn := withLogTable(t, testenv.Database(t))
	produceLog(t, broker, 0, n/8)
	done := make(chan struct{})
	go func() { // the rest over about 10 s: the load goes on through both rebalances
		defer close(done)
		for from := n / 8; from < n; from += 1000 {
			produceLog(t, broker, from, from+1000)
			time.Sleep(100 * time.Millisecond)
		}
	}()

	leaving := qiflow(t, env(broker, dsn), "run", exactlyOncePipeline)
	waitLogged(t, dsn, n/16, leaving)
	joining := qiflow(t, env(broker, dsn), "run", exactlyOncePipeline)
	require.Eventually(t, func() bool { return wrote(joining) }, 60*time.Second, 50*time.Millisecond,
		"the joining member never wrote:\n%s", joining.Output())
	// The first member leaves with SIGTERM while messages keep coming; the
	// one that joined takes its partitions from the database's offsets.
	before := rowCount(t, dsn, "crypto_prices_log")
	stop(t, leaving)
	select {
	case <-done:
		t.Fatal("the load ended before the member left")
	default:
	}
	<-done
	waitCommitted(t, broker, exactlyOnceGroup, "crypto-prices", 120*time.Second, joining)
	stop(t, joining)
	t.Logf("the first member left with %d of %d rows written", before, n)
	assert.Contains(t, joining.Output(), "the database's", "the joining member starts partitions where the database says")
	assertExactlyOnce(t, broker, dsn, n)
}

func TestExactlyOnceThroughAPostgreSQLCrash(t *testing.T) {
	const n = 60_000
	broker := newBroker(t)
	cluster := testenv.NewCluster(t)
	dsn := withLogTable(t, cluster.CreateDatabase(t))
	produceLog(t, broker, 0, n)

	proc := qiflow(t, env(broker, dsn), "run", exactlyOncePipeline)
	waitLogged(t, dsn, n/4, proc)
	cluster.Crash(t) // pg_ctl stop -m immediate: no shutdown checkpoint, connections cut
	time.Sleep(3 * time.Second)
	cluster.Start(t)

	waitCommitted(t, broker, exactlyOnceGroup, "crypto-prices", 40*time.Second, proc)
	stop(t, proc)
	assertExactlyOnce(t, broker, dsn, n)
}

// TestAStalledMemberIsFencedWhenItWakes stops a member with SIGSTOP (a GC
// or VM pause longer than the session), lets the group give its partitions
// to the other member and move on, then wakes it: what it had in hand is
// written by one of the two, never both.
func TestAStalledMemberIsFencedWhenItWakes(t *testing.T) {
	const n = 60_000
	broker := newBroker(t)
	dsn := withLogTable(t, testenv.Database(t))
	produceLog(t, broker, 0, n/2)

	shortSession := func() qiflowProcess {
		bin := testenv.BuildBinary(t, "./cmd/qiflow")
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		return qiflowProcess{testenv.StartProcess(t, bin, env(broker, dsn),
			"run", "--set", "http.address="+addr, "--set", "input.redpanda.session_timeout=6s", exactlyOncePipeline), addr}
	}
	stalled := shortSession()
	waitLogged(t, dsn, n/10, stalled)
	other := shortSession()
	time.Sleep(3 * time.Second) // both members share the partitions
	require.NoError(t, stalled.Signal(syscall.SIGSTOP))
	stoppedAt := rowCount(t, dsn, "crypto_prices_log")
	produceLog(t, broker, n/2, n)
	// The other member gets every partition once the stalled one's session
	// expires, and writes on from the database's offsets.
	waitLogged(t, dsn, stoppedAt+n/4, other)
	require.NoError(t, stalled.Signal(syscall.SIGCONT))
	time.Sleep(5 * time.Second) // the woken member finishes what it held

	waitCommitted(t, broker, exactlyOnceGroup, "crypto-prices", 120*time.Second, other)
	t.Logf("stalled with %d rows written; messages it found written already when it woke: %.0f", stoppedAt,
		stalled.metric(t, "qiflow_timescale_offsets_already_written_total"))
	stop(t, stalled)
	stop(t, other)
	assertExactlyOnce(t, broker, dsn, n)
}
