// Package pipelines_test runs the shipped pipelines as a user would: the
// real qiflow binary, real files, a real PostgreSQL and a Kafka-protocol
// broker over TCP.
package pipelines_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var topics = []string{"crypto-prices", "crypto-ohlcv", "crypto-analytics"}

// env is what a pipeline process needs to reach the test's services.
func env(broker *testenv.Broker, dsn string) []string {
	return []string{"REDPANDA_BROKERS=" + broker.SeedList(), "DATABASE_URL=" + dsn}
}

// qiflowProcess is a running qiflow and the address of its HTTP server.
type qiflowProcess struct {
	*testenv.Process
	http string
}

// qiflow runs the binary with a command and files, its HTTP server on a
// free loopback port.
func qiflow(t *testing.T, env []string, command string, files ...string) qiflowProcess {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	args := append([]string{command, "--set", "http.address=" + addr}, files...)
	return qiflowProcess{testenv.StartProcess(t, bin, env, args...), addr}
}

// metric sums the samples of a counter on the process's /metrics.
func (p qiflowProcess) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err, "/metrics is in the Prometheus text format")
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func newBroker(t *testing.T, opts ...testenv.BrokerOption) *testenv.Broker {
	broker := testenv.NewBroker(t, opts...)
	for _, topic := range topics {
		broker.CreateTopic(t, topic, 12)
		broker.CreateTopic(t, topic+".dlq", 1)
	}
	return broker
}

// withTables applies the shipped schema to the database behind dsn, as a
// user does: qiflow schema apply.
func withTables(t *testing.T, dsn string) string {
	t.Helper()
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, "schema", "apply", "-f", "schema.yaml", "--dsn", dsn).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return dsn
}

func rowCount(t *testing.T, dsn, table string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		return -1
	}
	return n
}

func waitCommitted(t *testing.T, broker *testenv.Broker, group, topic string, timeout time.Duration, proc qiflowProcess) {
	t.Helper()
	broker.WaitForCommit(t, group, topic, timeout, proc.Output)
}

// baseMillis is where message timestamps start: an hour ago, so that the
// shipped schema's retention and columnstore policies leave the rows alone.
var baseMillis = time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()

func priceMessage(i int) []byte {
	return fmt.Appendf(nil, `{"coinId":"coin-%d","symbol":"C%d","exchangeId":"binance","usdPrice":"%d.12345678","lastUpdated":%d,"source":"test","attribution":"qiflow"}`,
		i%50, i%50, 1+i%1000, baseMillis+int64(i/50)*1000)
}

func stop(t *testing.T, proc qiflowProcess) {
	t.Helper()
	require.NoError(t, proc.Signal(syscall.SIGTERM))
	code, err := proc.Wait(30 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "SIGTERM stops qiflow cleanly:\n%s", proc.Output())
}

func TestEveryShippedFileLints(t *testing.T) {
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	require.Subset(t, files, []string{"prices.yaml", "ohlcv.yaml", "analytics.yaml", "feed.yaml", "schema.yaml", "topics.yaml"})
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, append([]string{"lint"}, files...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, string(out))
}

func TestLintNamesTheFileAndLineOfABadSpec(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "schema.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("tables:\n  - name: x\n    bogus: 1\n"), 0o600))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, "lint", bad, "prices.yaml").CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), bad+`:3: table: unknown key "bogus"`)
}

func TestIngestPipelinesWriteGoodMessagesAndDeadLetterBadOnes(t *testing.T) {
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))

	const good = 2000
	broker.ProduceN(t, "crypto-prices", good, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })
	badPrices := []string{
		`{"coinId":"broken"`,
		`{"symbol":"X","exchangeId":"binance","usdPrice":"1","lastUpdated":1,"source":"s","attribution":"a"}`,
		`{"coinId":"x","symbol":"X","exchangeId":"binance","usdPrice":{"v":1},"lastUpdated":1,"source":"s","attribution":"a"}`,
		`{"coinId":"x","symbol":"X","exchangeId":"binance","usdPrice":"-42","lastUpdated":1,"source":"s","attribution":"a"}`,
	}
	for _, m := range badPrices {
		broker.Produce(t, "crypto-prices", &kgo.Record{Key: []byte("bad"), Value: []byte(m)})
	}
	candle := func(hoursAgo int, high, low, timeframe string) *kgo.Record {
		ts := time.Now().Truncate(time.Hour).Add(-time.Duration(hoursAgo) * time.Hour).Format(time.RFC3339)
		return &kgo.Record{Value: fmt.Appendf(nil, `{"coinId":"btc","exchangeId":"Kraken","timestamp":%q,"open":"10","high":%q,"low":%q,"close":"11","volume":"5","timeframe":%q,"source":"s","attribution":"a"}`,
			ts, high, low, timeframe)}
	}
	broker.Produce(t, "crypto-ohlcv", candle(1, "12", "9", "1h"), candle(2, "9", "11", "1h"), candle(3, "12", "9", "2h"))
	broker.Produce(t, "crypto-analytics",
		&kgo.Record{Value: fmt.Appendf(nil, `{"timestamp":%d,"totalMarketCap":"2500000000000.12","totalVolume":"98000000000","btcDominance":"54.3","activeCryptocurrencies":12000,"markets":900,"marketCapChange24h":"-0.5","source":"s","attribution":"a"}`, baseMillis)},
		&kgo.Record{Value: fmt.Appendf(nil, `{"timestamp":%d,"exchangeId":"binance","totalMarketCap":"1","totalVolume":"1","btcDominance":"154.3","activeCryptocurrencies":1,"markets":1,"marketCapChange24h":"0","source":"s","attribution":"a"}`, baseMillis)},
	)

	proc := qiflow(t, env(broker, dsn), "streams", "prices.yaml", "ohlcv.yaml", "analytics.yaml")
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 60*time.Second, proc)
	waitCommitted(t, broker, "qiflow-ohlcv", "crypto-ohlcv", 60*time.Second, proc)
	waitCommitted(t, broker, "qiflow-analytics", "crypto-analytics", 60*time.Second, proc)
	assert.Equal(t, float64(good+2), proc.metric(t, "qiflow_timescale_rows_written_total"))
	assert.Equal(t, float64(len(badPrices)+3), proc.metric(t, "qiflow_timescale_rows_dead_lettered_total"))
	assertMetricsFollowTheNamingScheme(t, proc)
	byCode := map[string]float64{}
	for _, m := range proc.families(t)["qiflow_timescale_rows_dead_lettered_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		assert.NotEmpty(t, labels["category"], "dead letters are counted by category: %v", labels)
		byCode[labels["code"]] += m.GetCounter().GetValue()
	}
	t.Logf("dead letters by code: %v", byCode)
	assert.NotContains(t, byCode, "", "dead letters are counted by code")
	assert.Greater(t, len(byCode), 1, "the bad messages have different codes")
	lags := proc.families(t)["qiflow_redpanda_consumer_lag"]
	require.NotNil(t, lags, "the consumer-lag gauge is served")
	for _, m := range lags.GetMetric() {
		assert.Zero(t, m.GetGauge().GetValue(), "nothing left uncommitted: %v", m.GetLabel())
	}
	stop(t, proc)

	assert.Equal(t, good, rowCount(t, dsn, "crypto_prices"))
	assert.Equal(t, 1, rowCount(t, dsn, "crypto_ohlcv"))
	assert.Equal(t, 1, rowCount(t, dsn, "crypto_market_analytics"))

	wantDead := map[string]int{"crypto-prices.dlq": len(badPrices), "crypto-ohlcv.dlq": 2, "crypto-analytics.dlq": 1}
	for topic, n := range wantDead {
		letters := broker.ConsumeAll(t, topic)
		require.Len(t, letters, n, topic)
		for _, l := range letters {
			h := map[string]string{}
			for _, kv := range l.Headers {
				h[kv.Key] = string(kv.Value)
			}
			assert.Equal(t, "BUSINESS", h["qiflow-error-category"], "%s: %v", topic, h)
			assert.NotEmpty(t, h["qiflow-error-code"])
			assert.NotEmpty(t, h["qiflow-error"])
			assert.Equal(t, topic[:len(topic)-4], h["qiflow-source-topic"])
			assert.NotEmpty(t, h["qiflow-source-partition"])
			assert.NotEmpty(t, h["qiflow-source-offset"])
		}
	}
}

// pricesThroughADatabaseFault runs prices.yaml over 100,000 messages, lets
// fault happen to the database once a fifth of them are rows, and checks
// that every message is one row, none is dead-lettered, and the replay does
// not deadlock with itself.
func pricesThroughADatabaseFault(t *testing.T, fault func(*testenv.Cluster)) {
	const n = 100_000
	broker := newBroker(t)
	cluster := testenv.NewCluster(t)
	dsn := withTables(t, cluster.CreateDatabase(t))
	broker.ProduceN(t, "crypto-prices", n, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })

	proc := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > n/5 }, 60*time.Second, 10*time.Millisecond,
		"no rows arrived:\n%s", proc.Output())
	fault(cluster)

	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 120*time.Second, proc)
	stop(t, proc)
	assert.Equal(t, n, rowCount(t, dsn, "crypto_prices"), "every message is one row")
	assert.Empty(t, broker.ConsumeAll(t, "crypto-prices.dlq"), "the fault dead-letters nothing")
	assert.NotContains(t, proc.Output(), "40P01", "the replay after the fault does not deadlock with itself")
}

func TestPricesSurviveADatabaseOutage(t *testing.T) {
	pricesThroughADatabaseFault(t, func(cluster *testenv.Cluster) {
		cluster.Stop(t)
		time.Sleep(10 * time.Second)
		cluster.Start(t)
	})
}

// TestPricesSurviveAPostgreSQLCrash crashes the database under load (pg_ctl
// stop -m immediate) on a cluster tuned with synchronous_commit = off, as
// the test clusters are: the last commits before the crash would be lost
// while their offsets were committed, unless qiflow's sessions make their
// own commits durable.
func TestPricesSurviveAPostgreSQLCrash(t *testing.T) {
	pricesThroughADatabaseFault(t, func(cluster *testenv.Cluster) {
		cluster.Crash(t)
		time.Sleep(3 * time.Second)
		cluster.Start(t)
	})
}

func TestPricesAfterSIGKILLEqualTheUniqueMessages(t *testing.T) {
	const n = 60_000
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	// Every 20th message repeats an earlier one, as a producer retry would.
	broker.ProduceN(t, "crypto-prices", n, func(i int) *kgo.Record {
		if i%20 == 19 {
			return &kgo.Record{Value: priceMessage(i - 7)}
		}
		return &kgo.Record{Value: priceMessage(i)}
	})
	unique := n - n/20

	first := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	require.Eventually(t, func() bool { return rowCount(t, dsn, "crypto_prices") > n/4 }, 60*time.Second, 10*time.Millisecond,
		"no rows arrived:\n%s", first.Output())
	require.NoError(t, first.Kill())
	_, err := first.Wait(10 * time.Second)
	require.NoError(t, err)
	atKill := rowCount(t, dsn, "crypto_prices")

	second := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 120*time.Second, second)
	stop(t, second)
	t.Logf("killed with %d of %d rows written", atKill, unique)
	assert.NotContains(t, second.Output(), "40P01", "the replay after SIGKILL does not deadlock with itself")
	assert.Equal(t, unique, rowCount(t, dsn, "crypto_prices"))
	assert.Empty(t, broker.ConsumeAll(t, "crypto-prices.dlq"))
}

func TestMetricsCountRowsInsertedAndConflictsSkippedAsTheTableHasThem(t *testing.T) {
	const n = 20_000
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	// Every 50th message repeats an earlier one, as a producer retry would.
	broker.ProduceN(t, "crypto-prices", n, func(i int) *kgo.Record {
		if i%50 == 49 {
			return &kgo.Record{Value: priceMessage(i - 13)}
		}
		return &kgo.Record{Value: priceMessage(i)}
	})
	resends := n / 50

	proc := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 90*time.Second, proc)
	inserted := proc.metric(t, "qiflow_timescale_rows_inserted_total")
	skipped := proc.metric(t, "qiflow_timescale_conflicts_skipped_total")
	stop(t, proc)
	rows := rowCount(t, dsn, "crypto_prices")
	t.Logf("count(*) %d, rows_inserted %.0f, conflicts_skipped %.0f, resends %d", rows, inserted, skipped, resends)

	assert.Equal(t, n-resends, rows)
	assert.Equal(t, float64(rows), inserted, "rows inserted is what the table holds")
	assert.Equal(t, float64(resends), skipped, "every resend is one conflict skipped")
}
