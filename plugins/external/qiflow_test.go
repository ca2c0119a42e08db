package external

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// These tests run bin/qiflow as a user would, with real plugin processes,
// a Kafka-protocol broker over TCP, and signals.

// qiflowProcess is a running qiflow and the address of its HTTP server.
type qiflowProcess struct {
	*testenv.Process
	http string
}

// runQiflow runs `qiflow run` on a config, with its HTTP server on a free
// loopback port.
func runQiflow(t *testing.T, env []string, config string) qiflowProcess {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pipeline.yaml")
	require.NoError(t, os.WriteFile(file, []byte(config), 0o600))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	return qiflowProcess{testenv.StartProcess(t, bin, env, "run", "--set", "http.address="+addr, file), addr}
}

// metric sums the samples of a counter on /metrics whose plugin label is
// plugin.
func (p qiflowProcess) metric(t *testing.T, name, plugin string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "plugin" && l.GetValue() == plugin {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// stop sends SIGTERM and expects a clean exit.
func (p qiflowProcess) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.Signal(syscall.SIGTERM))
	code, err := p.Wait(30 * time.Second)
	require.NoError(t, err)
	require.Equal(t, 0, code, "SIGTERM stops qiflow cleanly:\n%s", p.Output())
}

// pluginPIDs waits until qiflow runs n plugin processes and returns them.
func (p qiflowProcess) pluginPIDs(t *testing.T, n int) []int {
	t.Helper()
	var pids []int
	require.Eventually(t, func() bool {
		pids = children(p.PID())
		return len(pids) == n
	}, 30*time.Second, 10*time.Millisecond, "qiflow runs %d plugins; output:\n%s", n, p.Output())
	return pids
}

// children lists the live processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || !processAlive(child) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// newBroker starts a broker with one-partition topics in, out and in.dlq.
func newBroker(t *testing.T) *testenv.Broker {
	broker := testenv.NewBroker(t)
	for _, topic := range []string{"in", "out", "in.dlq"} {
		broker.CreateTopic(t, topic, 1)
	}
	return broker
}

// pipeline is a config that reads topic in, runs an external processor
// for each of the given sets of fields, and writes to out; BUSINESS errors
// go to in.dlq and other errored messages are nacked, as in the shipped
// example.
func pipeline(batchCount, threads int, externals ...string) string {
	var procs []string
	for _, e := range externals {
		procs = append(procs, "    - external:\n"+indent(strings.TrimSpace(e), "        "))
	}
	return fmt.Sprintf(`
input:
  redpanda:
    seed_brokers: [ "${REDPANDA_BROKERS}" ]
    topics: [ in ]
    consumer_group: test
    batch_count: %d
    revoke_timeout: 1s
pipeline:
  threads: %d
  processors:
%s
output:
  switch:
    cases:
      - check: 'metadata("qiflow-error-category") == "BUSINESS"'
        output:
          redpanda:
            seed_brokers: [ "${REDPANDA_BROKERS}" ]
            topic: in.dlq
            metadata:
              include_prefixes: [ "qiflow-" ]
      - output:
          reject_errored:
            redpanda:
              seed_brokers: [ "${REDPANDA_BROKERS}" ]
              topic: out
              max_in_flight: 1
              metadata:
                include_patterns: [ "^plugin_pid$" ]
`, batchCount, threads, strings.Join(procs, "\n"))
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

func env(broker *testenv.Broker, dir string) []string {
	return []string{"REDPANDA_BROKERS=" + broker.SeedList(), EnvPluginDir + "=" + dir}
}

func headers(r *kgo.Record) map[string]string {
	h := map[string]string{}
	for _, kv := range r.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

func TestHundredThousandMessagesThroughTheExamplePluginAllTransformedInOrder(t *testing.T) {
	const n = 100_000
	broker := newBroker(t)
	spellings := []struct{ in, want string }{{"xbt", "BTC"}, {" eth ", "ETH"}, {"Xdg", "DOGE"}, {"sol", "SOL"}, {"BTC", "BTC"}}
	broker.ProduceN(t, "in", n, func(i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"id":%d,"symbol":%q,"usdPrice":"67234.12345678","volume24h":1e-8}`, i, spellings[i%len(spellings)].in)}
	})

	proc := runQiflow(t, env(broker, pluginDir(t, "symbol_normalizer")), pipeline(1000, 1, `
plugin: symbol_normalizer
config:
  mapping: { xbt: BTC, XDG: DOGE }
`))
	broker.WaitForCommit(t, "test", "in", 60*time.Second, proc.Output)
	assert.Equal(t, float64(0), proc.metric(t, "qiflow_external_plugin_restarts_total", "symbol_normalizer"))
	proc.stop(t)

	out := broker.ConsumeAll(t, "out")
	require.Len(t, out, n)
	for i, r := range out {
		var msg struct {
			ID     int    `json:"id"`
			Symbol string `json:"symbol"`
		}
		require.NoError(t, json.Unmarshal(r.Value, &msg), "record %d: %s", i, r.Value)
		require.Equal(t, i, msg.ID, "records are in order")
		require.Equal(t, spellings[i%len(spellings)].want, msg.Symbol, "record %d: %s", i, r.Value)
		require.Contains(t, string(r.Value), `"usdPrice":"67234.12345678","volume24h":1e-8`, "other fields keep their exact text")
	}
	assert.Empty(t, broker.ConsumeAll(t, "in.dlq"))
	assert.Contains(t, proc.Output(), `msg="symbol_normalizer configured"`, "the plugin's log reaches qiflow's")
	assert.Contains(t, proc.Output(), `plugin=symbol_normalizer`)
}

func TestAPluginThatCrashesOrHangsIsRestartedAndEveryMessageArrivesOnce(t *testing.T) {
	const n = 3000
	broker := newBroker(t)
	broker.ProduceN(t, "in", n, func(i int) *kgo.Record { return &kgo.Record{Value: []byte(strconv.Itoa(i))} })

	proc := runQiflow(t, env(broker, pluginDir(t, "testplugin")), pipeline(100, 2, fmt.Sprintf(`
plugin: testplugin
timeout: 1s
backoff: { initial_interval: 10ms }
config:
  crash_on_batch: 3
  hang_on_batch: 5
  marker_dir: %s
`, t.TempDir())))
	broker.WaitForCommit(t, "test", "in", 60*time.Second, proc.Output)
	assert.Equal(t, float64(2), proc.metric(t, "qiflow_external_plugin_restarts_total", "testplugin"), "one restart for the crash, one for the hang")
	assert.GreaterOrEqual(t, proc.metric(t, "qiflow_external_plugin_call_errors_total", "testplugin"), float64(2))
	proc.stop(t)

	seen := map[string]int{}
	pids := map[string]bool{}
	for _, r := range broker.ConsumeAll(t, "out") {
		payload, ok := strings.CutPrefix(string(r.Value), "processed:")
		require.True(t, ok, "every message went through the plugin: %s", r.Value)
		seen[payload]++
		pids[headers(r)["plugin_pid"]] = true
	}
	for i := range n {
		require.Equal(t, 1, seen[strconv.Itoa(i)], "message %d arrives exactly once", i)
	}
	assert.Len(t, seen, n)
	assert.Len(t, pids, 3, "three processes did the work: the first, and one after each restart")
	assert.Empty(t, broker.ConsumeAll(t, "in.dlq"))
	out := proc.Output()
	assert.Contains(t, out, "crashed or broke its connection during a batch")
	assert.Contains(t, out, "did not answer a batch within the timeout of 1s")
	assert.Contains(t, out, "testplugin: crashing on batch 3", "the plugin's stderr reaches qiflow's log")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "testplugin: crashing on batch 3") {
			assert.Contains(t, line, "plugin=testplugin", "tagged with the plugin's name")
		}
	}
}

func TestAPluginThatAlwaysCrashesFailsClearlyWithoutSpinningOrLosingMessages(t *testing.T) {
	const n = 500
	broker := newBroker(t)
	broker.ProduceN(t, "in", n, func(i int) *kgo.Record { return &kgo.Record{Value: []byte(strconv.Itoa(i))} })
	dir := pluginDir(t, "testplugin")
	crash := filepath.Join(t.TempDir(), "crash")
	require.NoError(t, os.WriteFile(crash, nil, 0o600))
	config := pipeline(100, 1, fmt.Sprintf(`
plugin: testplugin
max_restarts: 2
restart_window: 10m
backoff: { initial_interval: 10ms, max_interval: 200ms }
config:
  crash_while_exists: %s
`, crash))

	proc := runQiflow(t, env(broker, dir), config)
	proc.WaitForOutput(t, "Plugin testplugin failed: it needed more than 2 restarts within 10m0s", 30*time.Second)
	// The input keeps replaying the nacked messages, so batches keep
	// arriving; the plugin is not started or called again while it counts
	// as failed.
	require.Eventually(t, func() bool { return replayed(t, proc) >= 2*100 },
		30*time.Second, 50*time.Millisecond, "the input replays the failed batches")
	assert.Equal(t, float64(2), proc.metric(t, "qiflow_external_plugin_restarts_total", "testplugin"))
	assert.Equal(t, float64(3), proc.metric(t, "qiflow_external_plugin_calls_total", "testplugin"), "the first process and two restarts got one call each")
	assert.Equal(t, float64(1), proc.metric(t, "qiflow_external_plugin_failures_total", "testplugin"))
	assert.Zero(t, broker.CommittedOffsets(t, "test", "in")[0], "nothing is committed past the failed messages")
	assert.Empty(t, broker.ConsumeAll(t, "out"), "nothing is written")
	assert.Empty(t, broker.ConsumeAll(t, "in.dlq"), "nothing is dead-lettered")
	proc.stop(t)

	// Fixed, the plugin gets every message from the input, once.
	require.NoError(t, os.Remove(crash))
	proc = runQiflow(t, env(broker, dir), config)
	broker.WaitForCommit(t, "test", "in", 60*time.Second, proc.Output)
	proc.stop(t)
	out := broker.ConsumeAll(t, "out")
	require.Len(t, out, n)
	for i, r := range out {
		assert.Equal(t, "processed:"+strconv.Itoa(i), string(r.Value))
	}
}

// replayed reads the redpanda input's replay counter, which has no plugin
// label.
func replayed(t *testing.T, p qiflowProcess) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	sum := 0.0
	for _, m := range families["qiflow_redpanda_input_replayed_total"].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

func TestAPluginOfAnotherProtocolVersionIsRefusedWithAClearMessage(t *testing.T) {
	dir := pluginDir(t, "otherversion")
	cases := []struct {
		version int
		want    string
	}{
		{0, "plugin otherversion (" + filepath.Join(dir, PluginPrefix+"otherversion") + ") speaks qiflow plugin protocol version 0, but this qiflow speaks version 1: rebuild the plugin against github.com/qicore/qiflow/pkg/pluginsdk of this qiflow release"},
		{2, "speaks qiflow plugin protocol version 2, but this qiflow speaks version 1: upgrade qiflow to a release that speaks it, or rebuild the plugin against github.com/qicore/qiflow/pkg/pluginsdk of this qiflow release"},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("version %d", c.version), func(t *testing.T) {
			proc := runQiflow(t, []string{EnvPluginDir + "=" + dir, "VERSION=" + strconv.Itoa(c.version)}, `
input:
  generate: { count: 1, mapping: 'root = "x"' }
pipeline:
  processors:
    - external: { plugin: otherversion, env: { TESTPLUGIN_PROTOCOL_VERSION: "${VERSION}" } }
output:
  drop: {}
`)
			code, err := proc.Wait(30 * time.Second)
			require.NoError(t, err)
			assert.NotEqual(t, 0, code, "qiflow refuses to run the pipeline")
			assert.Contains(t, proc.Output(), c.want)
		})
	}
}

func TestMessagesThePluginRejectsReachTheDeadLetterTopicWithTheirReason(t *testing.T) {
	const n = 100
	broker := newBroker(t)
	broker.ProduceN(t, "in", n, func(i int) *kgo.Record {
		if i%10 == 3 {
			return &kgo.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "bad %d", i)}
		}
		return &kgo.Record{Value: []byte(strconv.Itoa(i))}
	})
	proc := runQiflow(t, env(broker, pluginDir(t, "testplugin")), pipeline(20, 1, `
plugin: testplugin
config: { fail_containing: bad }
`))
	broker.WaitForCommit(t, "test", "in", 60*time.Second, proc.Output)
	assert.Equal(t, float64(10), proc.metric(t, "qiflow_external_plugin_message_errors_total", "testplugin"))
	proc.stop(t)

	assert.Len(t, broker.ConsumeAll(t, "out"), n-10)
	letters := broker.ConsumeAll(t, "in.dlq")
	require.Len(t, letters, 10)
	// The dead-letter output may write concurrently, so records are matched
	// by their source offset, not by their order.
	offsets := map[string]bool{}
	for _, l := range letters {
		h := headers(l)
		i, err := strconv.Atoi(h["qiflow-source-offset"])
		require.NoError(t, err, "%v", h)
		require.Equal(t, 3, i%10, "only the bad messages are dead-lettered: offset %d", i)
		offsets[h["qiflow-source-offset"]] = true
		assert.Equal(t, fmt.Sprintf("bad %d", i), string(l.Value), "the original value is kept")
		assert.Equal(t, "BUSINESS", h["qiflow-error-category"])
		assert.Equal(t, "test_rejected", h["qiflow-error-code"])
		assert.Equal(t, `BUSINESS test_rejected: payload contains "bad" (plugin=testplugin)`, h["qiflow-error"])
		assert.Equal(t, "in", h["qiflow-source-topic"])
		assert.Equal(t, "0", h["qiflow-source-partition"])
	}
	assert.Len(t, offsets, 10, "each bad message is dead-lettered once")
}

// twoPlugins runs a pipeline with two external processors, so qiflow has
// two plugin processes.
func twoPlugins(t *testing.T) (qiflowProcess, []int) {
	broker := newBroker(t)
	proc := runQiflow(t, env(broker, pluginDir(t, "testplugin", "symbol_normalizer")), pipeline(100, 1, "plugin: testplugin", "plugin: symbol_normalizer"))
	// The plugins start on the first batch. Signals are the subject: a
	// message that went through also means Benthos installed its signal
	// handler long ago (a SIGTERM just before that kills the process with
	// the default action).
	broker.Produce(t, "in", &kgo.Record{Value: []byte(`{"symbol":"xbt"}`)})
	broker.WaitForCommit(t, "test", "in", 30*time.Second, proc.Output)
	proc.WaitForOutput(t, "Started plugin symbol_normalizer", 30*time.Second)
	pids := proc.pluginPIDs(t, 2)
	for _, pid := range pids {
		require.True(t, processAlive(pid))
	}
	return proc, pids
}

func TestStoppingQiflowStopsItsPlugins(t *testing.T) {
	proc, pids := twoPlugins(t)
	proc.stop(t)
	for _, pid := range pids {
		assert.False(t, processAlive(pid), "plugin %d stopped with qiflow", pid)
	}
	assert.Contains(t, proc.Output(), "Stopped plugin testplugin")
	assert.Contains(t, proc.Output(), "Stopped plugin symbol_normalizer")
}

func TestPluginsExitOnTheirOwnWhenQiflowIsKilled(t *testing.T) {
	proc, pids := twoPlugins(t)
	require.NoError(t, proc.Kill())
	_, err := proc.Wait(10 * time.Second)
	require.NoError(t, err)
	for _, pid := range pids {
		assert.Eventually(t, func() bool { return !processAlive(pid) }, 10*time.Second, 50*time.Millisecond,
			"plugin %d exits without qiflow", pid)
	}
}

func TestExamplePipelinesLint(t *testing.T) {
	files, err := filepath.Glob("../../pipelines/examples/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, append([]string{"lint"}, files...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, string(out))
}

// The shipped example pipeline, end to end: prices from Redpanda, their
// symbols normalised by the example plugin, rows in PostgreSQL, and what
// the plugin rejects in crypto-prices.dlq.
func TestExamplePipelineNormalisesSymbolsAndDeadLettersWhatThePluginRejects(t *testing.T) {
	const n = 2000
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "crypto-prices", 3)
	broker.CreateTopic(t, "crypto-prices.dlq", 1)
	dsn := testenv.Database(t)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, "schema", "apply", "-f", "../../pipelines/schema.yaml", "--dsn", dsn).CombinedOutput()
	require.NoError(t, err, "%s", out)

	base := time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()
	spellings := []string{"xbt", " eth ", "Xdg"}
	broker.ProduceN(t, "crypto-prices", n, func(i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"coinId":"coin-%d","symbol":%q,"exchangeId":"binance","usdPrice":"%d.12345678","lastUpdated":%d,"source":"test","attribution":"qiflow"}`,
			i%50, spellings[i%len(spellings)], 1+i%1000, base+int64(i/50)*1000)}
	})
	rejected := map[string]string{
		`not json`: "invalid_json",
		`[1, 2]`:   "invalid_json",
		`{"coinId":"x","symbol":5,"exchangeId":"binance","usdPrice":"1","lastUpdated":1,"source":"s","attribution":"a"}`: "invalid_symbol",
	}
	for value := range rejected {
		broker.Produce(t, "crypto-prices", &kgo.Record{Key: []byte("bad"), Value: []byte(value)})
	}

	file, err := filepath.Abs("../../pipelines/examples/prices_normalized.yaml")
	require.NoError(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	proc := qiflowProcess{testenv.StartProcess(t, bin, []string{
		"REDPANDA_BROKERS=" + broker.SeedList(), "DATABASE_URL=" + dsn, EnvPluginDir + "=" + pluginDir(t, "symbol_normalizer"),
	}, "run", "--set", "http.address="+addr, file), addr}
	broker.WaitForCommit(t, "qiflow-prices", "crypto-prices", 60*time.Second, proc.Output)
	proc.stop(t)

	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer conn.Close(t.Context())
	rows, err := conn.Query(t.Context(), "SELECT symbol, count(*) FROM crypto_prices GROUP BY symbol")
	require.NoError(t, err)
	symbols := map[string]int{}
	for rows.Next() {
		var symbol string
		var count int
		require.NoError(t, rows.Scan(&symbol, &count))
		symbols[symbol] = count
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, map[string]int{"BTC": 667, "ETH": 667, "DOGE": 666}, symbols)

	letters := broker.ConsumeAll(t, "crypto-prices.dlq")
	require.Len(t, letters, len(rejected))
	for _, l := range letters {
		h := headers(l)
		assert.Equal(t, "BUSINESS", h["qiflow-error-category"], "%s", l.Value)
		assert.Equal(t, rejected[string(l.Value)], h["qiflow-error-code"], "%s", l.Value)
		assert.Equal(t, "crypto-prices", h["qiflow-source-topic"])
		assert.NotEmpty(t, h["qiflow-source-offset"])
		assert.Equal(t, "bad", string(l.Key))
	}
}

// A message that makes the plugin exit or hang is isolated by bisecting its
// batch: it alone is dead-lettered, the others arrive in order, and the
// restarts spent isolating it do not make the plugin count as failed.
func TestAMessageThatCrashesOrHangsThePluginAloneIsDeadLetteredAndTheOthersArrive(t *testing.T) {
	cases := []struct {
		name, option, code string
		n, poison          int
	}{
		{name: "crash", option: "exit_on", code: "plugin_crashed", n: 50, poison: 17},
		{name: "hang", option: "hang_on", code: "plugin_timeout", n: 10, poison: 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			broker := newBroker(t)
			broker.ProduceN(t, "in", c.n, func(i int) *kgo.Record {
				if i == c.poison {
					return &kgo.Record{Value: []byte("poison")}
				}
				return &kgo.Record{Value: []byte(strconv.Itoa(i))}
			})
			proc := runQiflow(t, env(broker, pluginDir(t, "testplugin")), pipeline(c.n, 1, fmt.Sprintf(`
plugin: testplugin
timeout: 500ms
max_restarts: 3
restart_window: 10m
backoff: { initial_interval: 10ms, max_interval: 200ms }
config: { %s: poison }
`, c.option)))
			broker.WaitForCommit(t, "test", "in", 60*time.Second, proc.Output)
			restarts := proc.metric(t, "qiflow_external_plugin_restarts_total", "testplugin")
			assert.Greater(t, restarts, float64(3), "isolating the message took more restarts than max_restarts")
			assert.Zero(t, proc.metric(t, "qiflow_external_plugin_failures_total", "testplugin"), "the plugin does not count as failed")
			assert.Equal(t, float64(1), proc.metric(t, "qiflow_external_plugin_message_errors_total", "testplugin"))
			proc.stop(t)

			var got []string
			for _, r := range broker.ConsumeAll(t, "out") {
				got = append(got, string(r.Value))
			}
			var want []string
			for i := range c.n {
				if i != c.poison {
					want = append(want, "processed:"+strconv.Itoa(i))
				}
			}
			assert.Equal(t, want, got, "every other message arrives once, in order")

			letters := broker.ConsumeAll(t, "in.dlq")
			require.Len(t, letters, 1)
			h := headers(letters[0])
			assert.Equal(t, "poison", string(letters[0].Value))
			assert.Equal(t, "BUSINESS", h["qiflow-error-category"])
			assert.Equal(t, c.code, h["qiflow-error-code"])
			assert.Contains(t, h["qiflow-error"], "plugin testplugin")
			assert.Equal(t, strconv.Itoa(c.poison), h["qiflow-source-offset"])
		})
	}
}
