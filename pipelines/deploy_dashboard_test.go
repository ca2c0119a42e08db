package pipelines_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// dashboardFile is the Grafana dashboard docker-compose.yml provisions.
const dashboardFile = "../deploy/grafana/dashboards/qiflow.json"

// dashboard is what the tests read of a Grafana dashboard JSON.
type dashboard struct {
	UID        string           `json:"uid"`
	Title      string           `json:"title"`
	Panels     []dashboardPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d dashboard
	require.NoError(t, json.Unmarshal(raw, &d), "%s is JSON", dashboardFile)
	return d
}

// labelValuesQuery is a Grafana template variable's query of a metric's label values.
var labelValuesQuery = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// queriedMetrics maps every metric name the dashboard's panels and
// template variables query to where it is queried.
func (d dashboard) queriedMetrics() map[string][]string {
	used := map[string][]string{}
	for _, p := range d.Panels {
		for _, target := range p.Targets {
			for _, name := range promqlMetricNames(target.Expr) {
				used[name] = append(used[name], fmt.Sprintf("panel %q", p.Title))
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		for _, m := range labelValuesQuery.FindAllStringSubmatch(string(v.Query), -1) {
			used[m[1]] = append(used[m[1]], fmt.Sprintf("variable $%s", v.Name))
		}
	}
	return used
}

// promqlWords are PromQL's aggregation operators, keywords and set
// operators: identifiers that are not metric names.
var promqlWords = map[string]bool{
	"sum": true, "avg": true, "min": true, "max": true, "count": true, "group": true, "stddev": true, "stdvar": true,
	"topk": true, "bottomk": true, "quantile": true, "count_values": true, "limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
}

// promqlLabelLists are the keywords followed by a parenthesised list of label names.
var promqlLabelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// promqlMetricNames returns the metric names a PromQL expression selects,
// in order of appearance: identifiers that are not functions, keywords or
// label names, outside label matchers, ranges, strings and Grafana
// variables.
func promqlMetricNames(expr string) []string {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	// skipString returns the index after the string that starts at i.
	skipString := func(i int) int {
		quote := expr[i]
		for i++; i < len(expr) && expr[i] != quote; i++ {
			if expr[i] == '\\' && quote != '`' {
				i++
			}
		}
		return i + 1
	}
	// skipTo returns the index after the close that matches the opening
	// bracket at i, stepping over strings.
	skipTo := func(i int, open, close byte) int {
		depth := 0
		for i < len(expr) {
			switch expr[i] {
			case '"', '\'', '`':
				i = skipString(i)
				continue
			case open:
				depth++
			case close:
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	nextNonSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(i)
		case c == '{':
			i = skipTo(i, '{', '}')
		case c == '[':
			i = skipTo(i, '[', ']')
		case c == '$':
			for i++; i < len(expr) && (isPart(expr[i]) || expr[i] == '{' || expr[i] == '}'); i++ {
			}
		case c >= '0' && c <= '9' || c == '.':
			for i++; i < len(expr) && (isPart(expr[i]) || expr[i] == '.'); i++ {
			}
		case isStart(c):
			start := i
			for i < len(expr) && isPart(expr[i]) {
				i++
			}
			word := expr[start:i]
			next := nextNonSpace(i)
			switch {
			case promqlLabelLists[word]:
				if next < len(expr) && expr[next] == '(' {
					i = skipTo(next, '(', ')')
				}
			case promqlWords[word]:
			case next < len(expr) && expr[next] == '(':
				// a function call
			default:
				names = append(names, word)
			}
		default:
			i++
		}
	}
	return names
}

func TestPromQLMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (instance) (rate(input_received_total{instance=~"$instance"}[$__rate_interval]))`, []string{"input_received_total"}},
		{`histogram_quantile(0.99, sum by (le, instance) (rate(qiflow_timescale_end_to_end_latency_seconds_bucket{instance=~"$instance", path="a}b"}[5m])))`,
			[]string{"qiflow_timescale_end_to_end_latency_seconds_bucket"}},
		{`topk(10, max by (group, topic, partition) (qiflow_redpanda_consumer_lag))`, []string{"qiflow_redpanda_consumer_lag"}},
		{`sum without (label) (a_total) / on (instance) group_left (x) b_total offset 5m and bool c`, []string{"a_total", "b_total", "c"}},
		{`sum(increase(x_total[1h])) * 100 + y{le="0.5"} > 1e3`, []string{"x_total", "y"}},
		{`label_replace(z, "dst", "$1", "src", "(.*)")`, []string{"z"}},
	} {
		assert.Equal(t, tc.want, promqlMetricNames(tc.expr), tc.expr)
	}
}

// TestDashboardPanelsAreWellFormed checks what Grafana needs of each panel:
// a unique id, a place on the 24-column grid without overlaps, the
// dashboard's datasource variable, and a query.
func TestDashboardPanelsAreWellFormed(t *testing.T) {
	d := loadDashboard(t)
	assert.Equal(t, "qiflow", d.UID)
	ids := map[int]bool{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	var titles []string
	for _, p := range d.Panels {
		assert.False(t, ids[p.ID], "panel id %d is unique", p.ID)
		ids[p.ID] = true
		titles = append(titles, p.Title)
		assert.LessOrEqual(t, p.GridPos.X+p.GridPos.W, 24, "%q fits the grid", p.Title)
		for x := p.GridPos.X; x < p.GridPos.X+p.GridPos.W; x++ {
			for y := p.GridPos.Y; y < p.GridPos.Y+p.GridPos.H; y++ {
				if other, ok := taken[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at (%d, %d)", other, p.Title, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		assert.Equal(t, "${datasource}", p.Datasource.UID, "%q uses the datasource variable", p.Title)
		require.NotEmpty(t, p.Targets, "%q queries something", p.Title)
		for _, target := range p.Targets {
			assert.NotEmpty(t, promqlMetricNames(target.Expr), "%q: %s selects a metric", p.Title, target.Expr)
		}
	}
	// What the issue asks the dashboard to show, by the metric that shows it.
	used := d.queriedMetrics()
	for _, name := range []string{
		"qiflow_timescale_rows_inserted_total",               // ingest rate
		"input_received_total",                               // consume rate
		"qiflow_exchange_router_routed_total",                // produce rate
		"qiflow_redpanda_consumer_lag",                       // lag
		"qiflow_timescale_end_to_end_latency_seconds_bucket", // latency
		"qiflow_timescale_rows_dead_lettered_total",          // dead letters (by code)
		"qiflow_timescale_conflicts_skipped_total",           // conflicts
		"qiflow_reloads_total",                               // reloads
		"qiflow_external_plugin_restarts_total",              // plugin restarts
		"qiflow_external_plugin_call_latency_seconds_bucket", // plugin latency
		"qiflow_timescale_write_duration_seconds_bucket",     // write latency
		"qiflow_redpanda_output_dead_lettered_total",         // producer dead letters
		"qiflow_timescale_retries_total",                     // retries
		"output_error_total",                                 // Benthos's errors
		"qiflow_external_plugin_calls_total",                 // plugin calls
		"qiflow_external_plugin_call_errors_total",           // plugin call errors
		"qiflow_timescale_rows_written_total",                // total rows
		"qiflow_timescale_rows_updated_total",                // upserts
		"qiflow_exchange_router_failed_total",                // router failures
		"qiflow_redpanda_input_replayed_total",               // replays
		"qiflow_redpanda_output_retries_total",               // producer retries
		"qiflow_timescale_copy_rollbacks_total",              // COPY rollbacks
		"processor_error_total",                              // Benthos's processor errors
		"output_sent_total",                                  // Benthos's output rate
	} {
		assert.Contains(t, used, name, "the dashboard shows %s", name)
	}
	dlq := panelExprs(d, "Dead letters / s by code")
	assert.Contains(t, dlq, "sum by (code, category)", "dead letters are broken down by code")
	assert.Contains(t, panelExprs(d, "End-to-end latency p50 / p99"), "histogram_quantile(0.99,")
	assert.Contains(t, panelExprs(d, "End-to-end latency p50 / p99"), "histogram_quantile(0.5,")
	t.Logf("panels: %s", strings.Join(titles, " | "))
}

func panelExprs(d dashboard, title string) string {
	for _, p := range d.Panels {
		if p.Title == title {
			var exprs []string
			for _, target := range p.Targets {
				exprs = append(exprs, target.Expr)
			}
			return strings.Join(exprs, "\n")
		}
	}
	return ""
}

// scrapeMetricNames returns the sample names a /metrics page serves: each
// family's name, and for histograms and summaries their _bucket, _sum and
// _count series.
func scrapeMetricNames(t *testing.T, addr string) map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		name, _, _ := strings.Cut(line, " ")
		name, _, _ = strings.Cut(name, "{")
		names[name] = true
	}
	require.NoError(t, sc.Err())
	return names
}

// TestDashboardQueriesOnlyMetricsARunningQiflowServes runs qiflow as
// docker-compose.yml does, the three shipped ingest pipelines under
// `streams --watch` (with a pipeline through the noop external plugin) and
// the shipped feed under `run --watch` with bad messages, makes every
// labelled metric appear (dead letters, a reload, a plugin restart), and
// checks that every metric a panel or variable of the dashboard queries is
// on their /metrics.
func TestDashboardQueriesOnlyMetricsARunningQiflowServes(t *testing.T) {
	used := loadDashboard(t).queriedMetrics()
	require.NotEmpty(t, used)

	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	plugins := t.TempDir()
	require.NoError(t, os.Symlink(testenv.BuildBinary(t, "./examples/plugins/noop"), filepath.Join(plugins, "qiflow-plugin-noop")))
	pluginPipeline := filepath.Join(t.TempDir(), "plugin.yaml")
	require.NoError(t, os.WriteFile(pluginPipeline, []byte(`
input:
  generate:
    interval: 20ms
    mapping: 'root = {"n": counter()}'
pipeline:
  processors:
    - external:
        plugin: noop
output:
  drop: {}
`), 0o600))

	baseEnv := append(env(broker, dsn), "QIFLOW_PLUGIN_DIR="+plugins)
	ingestAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	ingest := qiflowProcess{testenv.StartProcess(t, bin, baseEnv, "streams", "--watch", "--http-address", ingestAddr,
		"prices.yaml", "ohlcv.yaml", "analytics.yaml", pluginPipeline), ingestAddr}
	feedAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	feed := qiflowProcess{testenv.StartProcess(t, bin, baseEnv, "run", "--watch", "--http-address", feedAddr,
		"--set", "input.market_data.rate=300", "--set", "input.market_data.bad_share=0.05", "feed.yaml"), feedAddr}
	explain := func() string { return "ingest:\n" + ingest.Output() + "\nfeed:\n" + feed.Output() }

	waitFor(t, "rows in crypto_prices", 90*time.Second, func() bool { return rowCount(t, dsn, "crypto_prices") > 0 }, explain)

	// A reload, for qiflow_reloads_total{result}.
	resp, err := http.Post("http://"+ingestAddr+"/reload", "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)

	// A crash of the plugin, for qiflow_external_plugin_restarts_total{plugin}.
	var plugin []int
	waitFor(t, "the noop plugin runs", 30*time.Second, func() bool { plugin = childPIDs(ingest.PID()); return len(plugin) == 1 }, explain)
	require.NoError(t, syscall.Kill(plugin[0], syscall.SIGKILL))
	waitFor(t, "the noop plugin is restarted", 60*time.Second, func() bool {
		now := childPIDs(ingest.PID())
		return len(now) == 1 && now[0] != plugin[0]
	}, explain)

	var missing []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		served := scrapeMetricNames(t, ingestAddr)
		for name := range scrapeMetricNames(t, feedAddr) {
			served[name] = true
		}
		missing = missing[:0]
		for name := range used {
			if !served[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	sort.Strings(missing)
	for _, name := range missing {
		t.Errorf("the dashboard queries %s (%s), which no running qiflow serves on /metrics", name, strings.Join(slices.Compact(used[name]), ", "))
	}

	for name, p := range map[string]qiflowProcess{"ingest": ingest, "feed": feed} {
		require.NoError(t, p.Signal(syscall.SIGTERM))
		code, err := p.Wait(60 * time.Second)
		require.NoError(t, err, name)
		assert.Equal(t, 0, code, "%s stops cleanly:\n%s", name, p.Output())
	}
}

// childPIDs lists the live processes whose parent is pid. (A process's
// /proc children file lists only one thread's children, and Go starts
// processes from any thread, so this reads every process's parent.)
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		var child int
		if _, err := fmt.Sscan(e.Name(), &child); err == nil && len(fields) > 1 && fields[0] != "Z" && fields[1] == fmt.Sprint(pid) {
			out = append(out, child)
		}
	}
	return out
}
