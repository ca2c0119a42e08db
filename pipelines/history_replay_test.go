package pipelines_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/testenv"
	exchangerouter "github.com/qicore/qiflow/plugins/exchange_router"
)

// The replay data set: 400 series (8 exchanges × 50 symbols), each ticking
// once a second for historyTicks seconds from historyStart.
const (
	historySeries = 400
	historyTicks  = 2750 // 1,100,000 rows
)

var historyExchanges = []string{"binance", "coinbase", "kraken", "bybit", "okx", "kucoin", "bitfinex", "bitstamp"}

// historyStart is two hours ago, whole seconds, so that no retention or
// columnstore policy touches the rows.
var historyStart = time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)

// insertHistory generates the data set server-side. Series s is coin-<s%50>
// on exchange s/50; its price at tick k is historyPrice(s, k).
func insertHistory(t *testing.T, dsn string, ticks int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `
		INSERT INTO crypto_prices (last_updated, coin_id, symbol, exchange_id, usd_price, source, attribution)
		SELECT $1::timestamptz + k * interval '1 second',
		       'coin-' || (s % 50), 'C' || (s % 50), ($2::text[])[s / 50 + 1],
		       (((s * 2750 + k)::bigint * 7919) % 100000000000000 + 1)::numeric / 100000000,
		       'replay-test', 'qiflow'
		FROM generate_series(0, $3 - 1) AS k, generate_series(0, 399) AS s`,
		historyStart, historyExchanges, ticks)
	require.NoError(t, err)
}

// historyPrice is the exact price of series s at tick k, as the database
// prints numeric(20,8).
func historyPrice(s, k int) string {
	return marketdata.Fixed{Units: (int64(s*2750+k)*7919)%100000000000000 + 1, Scale: 8}.String()
}

// replayedPrice is the part of a replayed message the checks read.
type replayedPrice struct {
	CoinID      string `json:"coinId"`
	Symbol      string `json:"symbol"`
	ExchangeID  string `json:"exchangeId"`
	USDPrice    string `json:"usdPrice"`
	LastUpdated string `json:"lastUpdated"`
}

// replayChecks reads a replayed topic back and checks it against the data
// set's range [fromTick, toTick): every row in it at least once, none
// outside, exact values, each series on its router partition in time
// order. It returns how many rows came more than once, and the earliest
// tick of those.
type replayCheck struct {
	t                *testing.T
	fromTick, toTick int
	placer           *exchangerouter.Placer
}

func (c replayCheck) run(records []*kgo.Record) (duplicates, firstDuplicateTick int) {
	t := c.t
	seen := make([]bool, historySeries*historyTicks)
	lastTick := map[int]int{} // series → its latest tick so far, in partition order
	firstDuplicateTick = -1
	exchangeIndex := map[string]int{}
	for i, e := range historyExchanges {
		exchangeIndex[e] = i
	}
	bad := 0
	fail := func(format string, args ...any) {
		bad++
		if bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	for _, r := range records {
		var p replayedPrice
		if err := json.Unmarshal(r.Value, &p); err != nil {
			fail("record %d/%d is not JSON: %v", r.Partition, r.Offset, err)
			continue
		}
		var coin int
		if _, err := fmt.Sscanf(p.CoinID, "coin-%d", &coin); err != nil {
			fail("coinId %q", p.CoinID)
			continue
		}
		s := exchangeIndex[p.ExchangeID]*50 + coin
		at, err := time.Parse(time.RFC3339Nano, p.LastUpdated)
		if err != nil {
			fail("lastUpdated %q: %v", p.LastUpdated, err)
			continue
		}
		k := int(at.Sub(historyStart) / time.Second)
		if k < c.fromTick || k >= c.toTick {
			fail("row outside the range: tick %d of series %d", k, s)
			continue
		}
		if want := historyPrice(s, k); p.USDPrice != want {
			fail("series %d tick %d: usdPrice %s, want %s", s, k, p.USDPrice, want)
		}
		topic, key, partition, _, err := c.placer.Place(r.Value)
		require.NoError(t, err)
		if r.Topic != topic || string(r.Key) != key || r.Partition != partition {
			fail("series %d: record %s/%d key %q, the router says %s/%d key %q", s, r.Topic, r.Partition, r.Key, topic, partition, key)
		}
		if seen[s*historyTicks+k] {
			// A repeat after a restart: it restates a tick already read,
			// and is not held to the order of the first delivery.
			duplicates++
			if firstDuplicateTick < 0 || k < firstDuplicateTick {
				firstDuplicateTick = k
			}
			continue
		}
		seen[s*historyTicks+k] = true
		if prev, ok := lastTick[s]; ok && k <= prev {
			fail("series %d: tick %d after tick %d in partition %d", s, k, prev, r.Partition)
		}
		lastTick[s] = k
	}
	missing := 0
	for s := range historySeries {
		for k := c.fromTick; k < c.toTick; k++ {
			if !seen[s*historyTicks+k] {
				missing++
			}
		}
	}
	assert.Zero(t, missing, "rows of the range missing from the topic")
	assert.Zero(t, bad, "bad records")
	return duplicates, firstDuplicateTick
}

func replayEnv(broker *testenv.Broker, dsn string) []string { return env(broker, dsn) }

func rfc3339(tick int) string {
	return historyStart.Add(time.Duration(tick) * time.Second).Format(time.RFC3339)
}

// checkpointRows waits until the replay's checkpoint has been saved and
// returns the rows it records.
func checkpointRows(t *testing.T, dsn string, timeout time.Duration) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var rows int64
		err := conn.QueryRow(ctx, `SELECT rows FROM qiflow_history_checkpoints`).Scan(&rows)
		if err == nil && rows > 0 {
			return rows
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no checkpoint within %s", timeout)
	return 0
}

// slowProduce makes the broker wait perProduce before it answers each
// Produce request, until the returned function is called: a replay of a few
// hundred thousand rows otherwise ends in under a second on kfake, before a
// test can interrupt it between two checkpoints.
func slowProduce(t *testing.T, broker *testenv.Broker, perProduce time.Duration) (stop func()) {
	t.Helper()
	var slow atomic.Bool
	slow.Store(true)
	cluster := broker.Cluster()
	cluster.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if slow.Load() {
			cluster.SleepControl(func() { time.Sleep(perProduce) })
		}
		return nil, nil, false
	})
	stop = func() { slow.Store(false) }
	t.Cleanup(stop)
	return stop
}

// TestReplayOfAMillionRowsIsExactlyOnceInOrderAndResumesAfterAnInterrupt
// replays 1,000,000 of 1,100,000 rows into a 12-partition topic, is
// interrupted with SIGINT once it has saved a checkpoint, and is run again:
// the topic then holds every row of the range exactly once, none outside
// it, with exact prices, each series on the router's partition in time
// order.
func TestReplayOfAMillionRowsIsExactlyOnceInOrderAndResumesAfterAnInterrupt(t *testing.T) {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "prices-rebuild", 12)
	dsn := withTables(t, testenv.Database(t))
	insertHistory(t, dsn, historyTicks)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	fromTick, toTick := 125, 2625
	args := []string{"replay", "--table", "crypto_prices", "--from", rfc3339(fromTick), "--to", rfc3339(toTick),
		"--topic", "prices-rebuild", "--columns", "last_updated,coin_id,symbol,exchange_id,usd_price,source,attribution"}

	dry := testenv.StartProcess(t, bin, replayEnv(broker, dsn), append(args, "--dry-run")...)
	code, err := dry.Wait(time.Minute)
	require.NoError(t, err)
	require.Equal(t, 0, code, dry.Output())
	assert.Contains(t, dry.Output(), "dry run: 1,000,000 rows of crypto_prices")

	fast := slowProduce(t, broker, 10*time.Millisecond)
	first := testenv.StartProcess(t, bin, replayEnv(broker, dsn), args...)
	checkpointRows(t, dsn, 2*time.Minute)
	require.NoError(t, first.Signal(syscall.SIGINT))
	code, err = first.Wait(2 * time.Minute)
	fast()
	require.NoError(t, err)
	require.Equal(t, 130, code, "an interrupted replay exits 130:\n%s", first.Output())
	assert.Contains(t, first.Output(), "run the same command again to resume")

	second := testenv.StartProcess(t, bin, replayEnv(broker, dsn), args...)
	code, err = second.Wait(5 * time.Minute)
	require.NoError(t, err)
	require.Equal(t, 0, code, second.Output())
	assert.Contains(t, second.Output(), "resuming")
	assert.NotContains(t, second.Output(), "\033[", "no escape codes off a terminal")
	t.Logf("first run:\n%ssecond run:\n%s", first.Output(), second.Output())
	assert.Regexp(t, `replayed [\d,]+ rows of crypto_prices`, second.Output())
	assert.Equal(t, 0, rowCount(t, dsn, "qiflow_history_checkpoints"), "a complete replay deletes its checkpoint")

	placer, err := exchangerouter.NewPlacer("topic: prices-rebuild\npartitions: 12\nunknown_exchange: default")
	require.NoError(t, err)
	records := broker.ConsumeAll(t, "prices-rebuild")
	require.Equal(t, 1_000_000, len(records), "every row once: no more, no fewer")
	duplicates, _ := replayCheck{t: t, fromTick: fromTick, toTick: toTick, placer: placer}.run(records)
	assert.Zero(t, duplicates, "a resumed replay repeats nothing")
}

// TestAReplayKilledMidwayRepeatsOnlyWhatFollowsItsCheckpoint kills a replay
// with SIGKILL: run again, it misses nothing, and repeats only rows after
// the checkpoint it had saved.
func TestAReplayKilledMidwayRepeatsOnlyWhatFollowsItsCheckpoint(t *testing.T) {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "prices-rebuild", 12)
	dsn := withTables(t, testenv.Database(t))
	const ticks = 750 // 300,000 rows
	insertHistory(t, dsn, ticks)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	args := []string{"replay", "--table", "crypto_prices", "--from", rfc3339(0), "--to", rfc3339(ticks),
		"--topic", "prices-rebuild", "--page-size", "2000"}

	fast := slowProduce(t, broker, 10*time.Millisecond)
	first := testenv.StartProcess(t, bin, replayEnv(broker, dsn), args...)
	checkpointRows(t, dsn, 2*time.Minute)
	require.NoError(t, first.Kill())
	_, _ = first.Wait(30 * time.Second)
	fast()

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var saved time.Time
	require.NoError(t, conn.QueryRow(ctx, `SELECT time FROM qiflow_history_checkpoints`).Scan(&saved))
	savedTick := int(saved.Sub(historyStart) / time.Second)

	second := testenv.StartProcess(t, bin, replayEnv(broker, dsn), args...)
	code, err := second.Wait(5 * time.Minute)
	require.NoError(t, err)
	require.Equal(t, 0, code, second.Output())

	placer, err := exchangerouter.NewPlacer("topic: prices-rebuild\npartitions: 12\nunknown_exchange: default")
	require.NoError(t, err)
	records := broker.ConsumeAll(t, "prices-rebuild")
	duplicates, firstDuplicate := replayCheck{t: t, fromTick: 0, toTick: ticks, placer: placer}.run(records)
	assert.Equal(t, len(records)-historySeries*ticks, duplicates)
	if duplicates > 0 {
		assert.GreaterOrEqual(t, firstDuplicate, savedTick, "only rows at or after the checkpoint (tick %d) repeat", savedTick)
	}
	t.Logf("killed after checkpoint at tick %d; %d rows repeated", savedTick, duplicates)
}

func TestReplayRefusesAMissingTopicAndAnEmptyRange(t *testing.T) {
	broker := testenv.NewBroker(t)
	dsn := withTables(t, testenv.Database(t))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	run := func(args ...string) (string, int) {
		p := testenv.StartProcess(t, bin, replayEnv(broker, dsn), append([]string{"replay", "--table", "crypto_prices"}, args...)...)
		code, err := p.Wait(time.Minute)
		require.NoError(t, err)
		return p.Output(), code
	}
	out, code := run("--from", rfc3339(0), "--to", rfc3339(10), "--topic", "nowhere")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "topic nowhere does not exist")
	out, code = run("--from", rfc3339(10), "--to", rfc3339(0), "--topic", "nowhere")
	assert.Equal(t, 1, code)
	assert.True(t, strings.Contains(out, "empty range"), out)
}

// TestReplayPlacesSeriesAsTheRouterFileSays replays with --router: a hot
// exchange spread over every partition lands where that router puts it.
func TestReplayPlacesSeriesAsTheRouterFileSays(t *testing.T) {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "prices-rebuild", 12)
	dsn := withTables(t, testenv.Database(t))
	insertHistory(t, dsn, 10)
	router := filepath.Join(t.TempDir(), "router.yaml")
	const fields = "partitions: 12\nhot_exchanges: { binance: 12 }\npartitions_per_exchange: 3\n"
	require.NoError(t, os.WriteFile(router, []byte(fields), 0o600))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	p := testenv.StartProcess(t, bin, replayEnv(broker, dsn), "replay", "--table", "crypto_prices",
		"--from", rfc3339(0), "--to", rfc3339(10), "--topic", "prices-rebuild", "--router", router, "--json")
	code, err := p.Wait(time.Minute)
	require.NoError(t, err)
	require.Equal(t, 0, code, p.Output())
	assert.Contains(t, p.Output(), `"complete": true`)

	placer, err := exchangerouter.NewPlacer("topic: prices-rebuild\n" + fields)
	require.NoError(t, err)
	records := broker.ConsumeAll(t, "prices-rebuild")
	require.Equal(t, 10*historySeries, len(records))
	replayCheck{t: t, fromTick: 0, toTick: 10, placer: placer}.run(records)
	partitions := map[int32]bool{}
	for _, r := range records {
		if strings.HasPrefix(string(r.Key), "binance:") {
			partitions[r.Partition] = true
		}
	}
	assert.Greater(t, len(partitions), 3, "binance, hot, spreads beyond the share of 3")
}

// TestReplayOfATableWithoutAKeyNeedsKeyColumns replays crypto_prices_log,
// which has no primary key: refused without --key-columns, exact with them.
func TestReplayOfATableWithoutAKeyNeedsKeyColumns(t *testing.T) {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "prices-rebuild", 12)
	dsn := withTables(t, testenv.Database(t))
	insertHistory(t, dsn, 5)
	execSQL(t, dsn, `CREATE TABLE prices_nokey AS SELECT * FROM crypto_prices`)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	run := func(extra ...string) (string, int) {
		args := append([]string{"replay", "--table", "prices_nokey", "--from", rfc3339(0), "--to", rfc3339(5), "--topic", "prices-rebuild",
			"--time-column", "last_updated"}, extra...)
		p := testenv.StartProcess(t, bin, replayEnv(broker, dsn), args...)
		code, err := p.Wait(time.Minute)
		require.NoError(t, err)
		return p.Output(), code
	}
	out, code := run()
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "no primary key")
	out, code = run("--key-columns", "coin_id,exchange_id")
	require.Equal(t, 0, code, out)
	placer, err := exchangerouter.NewPlacer("topic: prices-rebuild\npartitions: 12\nunknown_exchange: default")
	require.NoError(t, err)
	records := broker.ConsumeAll(t, "prices-rebuild")
	require.Equal(t, 5*historySeries, len(records))
	replayCheck{t: t, fromTick: 0, toTick: 5, placer: placer}.run(records)
}
