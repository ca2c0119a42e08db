package mcp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/testenv"
)

var readTools = []string{"streams_status", "consumer_lag", "reloads", "dead_letters", "schema_plan", "schema_status", "topics_status", "profile", "query_range"}

var writeTools = []string{"schema_apply", "reload", "dlq_replay"}

// TestToolsAnswerAsQiflowDoes runs prices.yaml on kfake and PostgreSQL and
// asks `qiflow mcp`, over stdio with the SDK's own client, every question
// of docs/mcp.md, checking each answer against /metrics, /reloads,
// `qiflow topics status`, `qiflow schema status|plan`, the broker and the
// table.
func TestToolsAnswerAsQiflowDoes(t *testing.T) {
	p := startPipeline(t)
	s := p.stdio(t)

	t.Run("lists every tool, annotated", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		tools := map[string]*mcp.Tool{}
		for tool, err := range s.cs.Tools(ctx, nil) {
			require.NoError(t, err)
			tools[tool.Name] = tool
		}
		for _, name := range readTools {
			require.Contains(t, tools, name)
			assert.True(t, tools[name].Annotations.ReadOnlyHint, name)
			assert.NotEmpty(t, tools[name].Description, name)
			assert.NotNil(t, tools[name].InputSchema, name)
			assert.NotNil(t, tools[name].OutputSchema, name)
		}
		for _, name := range writeTools {
			require.Contains(t, tools, name)
			assert.False(t, tools[name].Annotations.ReadOnlyHint, name)
			require.NotNil(t, tools[name].Annotations.DestructiveHint, name)
			assert.True(t, *tools[name].Annotations.DestructiveHint, name)
		}
	})

	t.Run("streams_status matches /metrics and /reloads", func(t *testing.T) {
		var out struct {
			Streams []struct {
				Stream     string
				File       string
				State      string
				LastReload struct{ Result, Trigger string } `json:"last_reload"`
				Counters   map[string]float64
				Rates      map[string]float64 `json:"rates_per_second"`
			}
		}
		s.call(t, "streams_status", map[string]any{"window_seconds": 0.5}, &out)
		require.Len(t, out.Streams, 1)
		st := out.Streams[0]
		assert.Equal(t, "prices", st.Stream)
		assert.Equal(t, p.file("prices.yaml"), st.File)
		assert.Equal(t, "ready", st.State)
		assert.Equal(t, "applied", st.LastReload.Result)
		assert.Equal(t, "start", st.LastReload.Trigger)
		// The pipeline is idle: the counters stand still, as /metrics shows.
		for _, name := range []string{"qiflow_timescale_rows_written_total", "qiflow_timescale_rows_dead_lettered_total", "input_received_total"} {
			assert.Equal(t, p.metric(t, name), st.Counters[name], name)
			assert.Zero(t, st.Rates[name], name)
		}
		assert.Equal(t, float64(goodPrices), st.Counters["qiflow_timescale_rows_written_total"])
		assert.Equal(t, float64(len(badPrices)), st.Counters["qiflow_timescale_rows_dead_lettered_total"])
	})

	t.Run("consumer_lag matches the committed offsets", func(t *testing.T) {
		var out struct {
			Groups []struct {
				Group      string
				TotalLag   int64 `json:"total_lag"`
				Partitions []struct {
					Topic               string
					Partition           int32
					Committed, End, Lag int64
				}
			}
		}
		s.call(t, "consumer_lag", map[string]any{"groups": []string{"qiflow-prices"}, "topic": "crypto-prices"}, &out)
		require.Len(t, out.Groups, 1)
		g := out.Groups[0]
		assert.Equal(t, "qiflow-prices", g.Group)
		assert.Zero(t, g.TotalLag)
		committed, ends := p.broker.CommittedOffsets(t, "qiflow-prices", "crypto-prices"), p.broker.EndOffsets(t, "crypto-prices")
		require.Len(t, g.Partitions, len(ends))
		require.NotEmpty(t, committed)
		for _, part := range g.Partitions {
			assert.Equal(t, "crypto-prices", part.Topic)
			want, ok := committed[part.Partition]
			if !ok {
				want = -1 // a partition that never had a message has no commit
			}
			assert.Equal(t, want, part.Committed, "partition %d", part.Partition)
			assert.Equal(t, ends[part.Partition], part.End, "partition %d", part.Partition)
			assert.Zero(t, part.Lag)
		}
	})

	t.Run("topics_status is qiflow topics status", func(t *testing.T) {
		var out struct{ Topics []any }
		s.call(t, "topics_status", nil, &out)
		var cli []any
		require.NoError(t, json.Unmarshal(p.qiflowOK(t, "topics", "status", "--json", "-f", p.file("topics.yaml")), &cli))
		assert.Equal(t, cli, jsonOf(t, out.Topics))
		spec, err := os.ReadFile(p.file("topics.yaml"))
		require.NoError(t, err)
		assert.Len(t, out.Topics, strings.Count(string(spec), "- name:"), "one entry per topic of topics.yaml")
	})

	t.Run("schema_status is qiflow schema status", func(t *testing.T) {
		var out any
		s.call(t, "schema_status", nil, &out)
		var cli any
		require.NoError(t, json.Unmarshal(p.qiflowOK(t, "schema", "status", "--json", "-f", p.file("schema.yaml")), &cli))
		assert.Equal(t, cli, out)
		if !testenv.TimescaleAvailable(t, p.dsn) {
			t.Log("TimescaleDB is not installed: the status holds warnings, no chunks")
			return
		}
		var st struct {
			Hypertables []struct {
				Table      string
				Hypertable bool
				Chunks     []any
				Policies   []any
			}
		}
		s.call(t, "schema_status", nil, &st)
		require.NotEmpty(t, st.Hypertables)
		assert.Equal(t, "crypto_prices", st.Hypertables[0].Table)
		assert.True(t, st.Hypertables[0].Hypertable)
		assert.NotEmpty(t, st.Hypertables[0].Chunks, "the prices written are in chunks")
		assert.NotEmpty(t, st.Hypertables[0].Policies, "columnstore and retention policies")
	})

	t.Run("schema_plan is qiflow schema plan: in sync", func(t *testing.T) {
		var out struct {
			Steps []any
		}
		s.call(t, "schema_plan", nil, &out)
		assert.Empty(t, out.Steps, "the schema was applied")
		var outAny, cli any
		s.call(t, "schema_plan", nil, &outAny)
		require.NoError(t, json.Unmarshal(p.qiflowOK(t, "schema", "plan", "--json", "-f", p.file("schema.yaml")), &cli))
		assert.Equal(t, cli, outAny)
	})

	t.Run("reloads is GET /reloads, newest first", func(t *testing.T) {
		var out struct {
			Reloads []any
			Total   int
		}
		s.call(t, "reloads", nil, &out)
		var api struct{ Reloads []any }
		p.getJSON(t, "/reloads", &api)
		slices.Reverse(api.Reloads)
		assert.Equal(t, api.Reloads, out.Reloads)
		assert.Equal(t, len(api.Reloads), out.Total)
	})

	t.Run("dead_letters shows why, from where, and the original value", func(t *testing.T) {
		type letter struct {
			Category, Code, Error, Value string
			SourceTopic                  string `json:"source_topic"`
			SourceOffset                 *int64 `json:"source_offset"`
			Headers                      map[string]string
		}
		var out struct {
			Topic       string
			Matched     int
			DeadLetters []letter `json:"dead_letters"`
		}
		s.call(t, "dead_letters", map[string]any{"topic": "crypto-prices"}, &out)
		assert.Equal(t, "crypto-prices.dlq", out.Topic)
		require.Len(t, out.DeadLetters, len(badPrices))
		var values, codes []string
		for _, l := range out.DeadLetters {
			values = append(values, l.Value)
			codes = append(codes, l.Code)
			assert.Equal(t, "BUSINESS", l.Category)
			assert.NotEmpty(t, l.Error)
			assert.Equal(t, "crypto-prices", l.SourceTopic)
			assert.NotNil(t, l.SourceOffset)
			assert.Equal(t, l.Code, l.Headers["qiflow-error-code"])
		}
		assert.ElementsMatch(t, badPrices, values)

		var one struct {
			Matched     int
			DeadLetters []letter `json:"dead_letters"`
		}
		s.call(t, "dead_letters", map[string]any{"topic": "crypto-prices.dlq", "code": codes[0], "limit": 1}, &one)
		require.Len(t, one.DeadLetters, 1)
		assert.Equal(t, codes[0], one.DeadLetters[0].Code)
		s.call(t, "dead_letters", map[string]any{"topic": "crypto-prices.dlq", "category": "SECURITY"}, &one)
		assert.Empty(t, one.DeadLetters)
		assert.Zero(t, one.Matched)
	})

	t.Run("profile is redacted", func(t *testing.T) {
		var out struct {
			Name    string
			Entries []struct{ Key, Value, Source string }
		}
		s.call(t, "profile", nil, &out)
		values := map[string]string{}
		for _, e := range out.Entries {
			values[e.Key] = e.Value
		}
		assert.Equal(t, "development", out.Name)
		assert.Equal(t, p.broker.SeedList(), values["redpanda.brokers"])
		assert.Equal(t, profile.RedactURL(p.dsn), values["database.url"])
		assert.NotContains(t, values["database.url"], dbPassword)
	})

	t.Run("query_range: one series in a time range, exact", func(t *testing.T) {
		from, to := priceBase.Add(10*time.Second), priceBase.Add(70*time.Second)
		var out struct {
			Columns   []string
			Rows      []map[string]any
			Truncated bool
		}
		s.call(t, "query_range", map[string]any{
			"table": "crypto_prices", "coin_id": "bitcoin", "exchange_id": "binance",
			"from": from.Format(time.RFC3339), "to": to.Format(time.RFC3339),
			"columns": []string{"last_updated", "usd_price"},
		}, &out)
		assert.Equal(t, []string{"last_updated", "usd_price"}, out.Columns)
		require.Len(t, out.Rows, 60, "one price a second in [10s, 70s)")
		assert.False(t, out.Truncated)
		assert.Equal(t, "60010.12345678", out.Rows[0]["usdPrice"], "the 11th message, to the last digit")
		assert.Equal(t, "60069.12345678", out.Rows[59]["usdPrice"])
		assert.Equal(t, from.Format(time.RFC3339), out.Rows[0]["lastUpdated"])

		want := queryStrings(t, p.dsn, `SELECT usd_price::text FROM crypto_prices WHERE coin_id = 'bitcoin' AND exchange_id = 'binance' AND last_updated >= $1 AND last_updated < $2 ORDER BY last_updated`, from, to)
		var got []string
		for _, r := range out.Rows {
			got = append(got, r["usdPrice"].(string))
		}
		assert.Equal(t, want, got)

		// All series, in pages: every row once, as count(*) says.
		args := map[string]any{"table": "crypto_prices", "from": priceBase.Add(-time.Hour).Format(time.RFC3339), "to": time.Now().Format(time.RFC3339), "limit": 120}
		seen := map[string]bool{}
		for page := 0; ; page++ {
			var all struct {
				Rows      []map[string]any
				Truncated bool
				Next      any
			}
			s.call(t, "query_range", args, &all)
			require.Less(t, page, 5, "pages do not end")
			assert.LessOrEqual(t, len(all.Rows), 120)
			assert.Len(t, all.Rows[0], 12, "every column by default")
			for _, r := range all.Rows {
				k := r["lastUpdated"].(string) + r["coinId"].(string) + r["exchangeId"].(string)
				assert.False(t, seen[k], "row %s twice", k)
				seen[k] = true
			}
			if !all.Truncated {
				assert.Nil(t, all.Next)
				break
			}
			require.NotNil(t, all.Next)
			args["after"] = all.Next
		}
		assert.Len(t, seen, goodPrices)
	})

	t.Run("hostile arguments are refused with a clear error", func(t *testing.T) {
		rng := map[string]any{"from": priceBase.Format(time.RFC3339), "to": time.Now().Format(time.RFC3339)}
		with := func(kv ...any) map[string]any {
			m := map[string]any{"table": "crypto_prices"}
			for k, v := range rng {
				m[k] = v
			}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i].(string)] = kv[i+1]
			}
			return m
		}
		cases := []struct {
			args map[string]any
			want string
		}{
			{with("table", "crypto_prices; DROP TABLE crypto_prices; --"), `table "crypto_prices; DROP TABLE crypto_prices; --" is not a hypertable`},
			{with("table", `crypto_prices" WHERE 1=1 --`), "choose one of crypto_prices, crypto_ohlcv, crypto_market_analytics"},
			{with("columns", []string{"usd_price FROM pg_authid --"}), `column "usd_price FROM pg_authid --" is not a column of crypto_prices`},
			{with("limit", 1_000_000), "limit 1000000 is above the cap of 1000"},
			{with("limit", -5), "limit -5: must be positive"},
			{with("from", "yesterday"), `from "yesterday": want an RFC 3339 time`},
			{with("timeframe", "1h"), "crypto_prices has no column timeframe"},
		}
		for _, c := range cases {
			assert.Contains(t, s.refused(t, "query_range", c.args), c.want)
		}
		assert.Contains(t, s.refused(t, "dead_letters", map[string]any{"topic": "crypto-prices", "limit": 1_000_000}), "limit 1000000 is above the cap of 500")
		assert.Contains(t, s.refused(t, "reloads", map[string]any{"limit": 100_000}), "above the cap of 256")
		// The table survived.
		assert.Equal(t, []string{"300"}, queryStrings(t, p.dsn, "SELECT count(*)::text FROM crypto_prices"))
	})

	t.Run("write tools are refused without --allow-writes", func(t *testing.T) {
		before := len(reloadsOf(t, p))
		dlqEnd := p.broker.EndOffsets(t, "crypto-prices.dlq")
		args := map[string]map[string]any{"dlq_replay": {"topic": "crypto-prices"}}
		for _, name := range writeTools {
			assert.Contains(t, s.refused(t, name, args[name]), "--allow-writes", name)
		}
		assert.Len(t, reloadsOf(t, p), before, "no reload was triggered")
		assert.Equal(t, dlqEnd, p.broker.EndOffsets(t, "crypto-prices.dlq"), "no letter was redriven")
	})

	t.Run("resources: the pipeline, schema.yaml and topics.yaml in use", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var uris []string
		for r, err := range s.cs.Resources(ctx, nil) {
			require.NoError(t, err)
			uris = append(uris, r.URI)
		}
		assert.Subset(t, uris, []string{"qiflow://schema.yaml", "qiflow://topics.yaml", "qiflow://pipelines"})
		read := func(uri string) string {
			res, err := s.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
			require.NoError(t, err, uri)
			require.Len(t, res.Contents, 1)
			s.hear(res)
			return res.Contents[0].Text
		}
		for uri, file := range map[string]string{"qiflow://schema.yaml": "schema.yaml", "qiflow://topics.yaml": "topics.yaml", "qiflow://pipelines/prices": "prices.yaml"} {
			raw, err := os.ReadFile(p.file(file))
			require.NoError(t, err)
			assert.Equal(t, string(raw), read(uri), uri)
		}
		assert.Contains(t, read("qiflow://pipelines"), `"uri": "qiflow://pipelines/prices"`)
		_, err := s.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "qiflow://pipelines/../../etc/passwd"})
		assert.Error(t, err, "only a running stream's file is served")
	})

	t.Run("no answer carries a secret", func(t *testing.T) {
		s.mu.Lock()
		defer s.mu.Unlock()
		require.NotEmpty(t, s.heard)
		for _, h := range s.heard {
			assert.NotContains(t, h, dbPassword)
		}
	})

	t.Run("with --allow-writes: reload, schema_apply and dlq_replay run", func(t *testing.T) {
		w := p.stdio(t, "--allow-writes")
		before := len(reloadsOf(t, p))
		edited, err := os.ReadFile(p.file("prices.yaml"))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p.file("prices.yaml.tmp"), append(edited, "\n# edited by the mcp test\n"...), 0o644))
		require.NoError(t, os.Rename(p.file("prices.yaml.tmp"), p.file("prices.yaml")))
		var rel struct {
			Reloads []struct{ Result, Trigger string }
		}
		w.call(t, "reload", nil, &rel)
		after := reloadsOf(t, p)
		assert.Greater(t, len(after), before, "the reload is in qiflow's history")
		var apply struct{ Applied []any }
		w.call(t, "schema_apply", nil, &apply)
		assert.Empty(t, apply.Applied, "the schema was in sync")

		// dlq_replay: a dry run lists the letters and sends nothing; the
		// redrive sends them back to crypto-prices, where the pipeline
		// dead-letters them again and writes no row.
		type replayed struct {
			Topic    string
			DryRun   bool `json:"dry_run"`
			Redriven int
			Letters  []string
			Skipped  []string
		}
		sourceEnd := p.broker.EndOffsets(t, "crypto-prices")
		var dry replayed
		w.call(t, "dlq_replay", map[string]any{"topic": "crypto-prices", "dry_run": true}, &dry)
		assert.Equal(t, replayed{Topic: "crypto-prices.dlq", DryRun: true, Redriven: len(badPrices), Letters: dry.Letters, Skipped: []string{}}, dry)
		assert.Len(t, dry.Letters, len(badPrices))
		assert.Equal(t, sourceEnd, p.broker.EndOffsets(t, "crypto-prices"), "a dry run sends nothing")

		var one replayed
		w.call(t, "dlq_replay", map[string]any{"topic": "crypto-prices.dlq", "partition": 0, "offset": 0}, &one)
		assert.Equal(t, 1, one.Redriven)
		assert.Equal(t, []string{"crypto-prices.dlq/0/0"}, one.Letters)
		assert.Eventually(t, func() bool { return p.broker.EndOffsets(t, "crypto-prices.dlq")[0] == int64(len(badPrices))+1 },
			60*time.Second, 100*time.Millisecond, "the redriven letter is dead-lettered again:\n%s", p.proc.Output())
		var grew int64
		for part, end := range p.broker.EndOffsets(t, "crypto-prices") {
			grew += end - sourceEnd[part]
		}
		assert.Equal(t, int64(1), grew, "one record went back to crypto-prices")
		assert.Equal(t, []string{"300"}, queryStrings(t, p.dsn, "SELECT count(*)::text FROM crypto_prices"))

		assert.Contains(t, w.refused(t, "dlq_replay", map[string]any{"topic": "crypto-prices", "since": "yesterday"}), `since "yesterday": want an RFC 3339 time`)
		assert.Contains(t, w.refused(t, "dlq_replay", map[string]any{"topic": "crypto-prices", "offset": 3}), "give a partition with it")
		assert.Contains(t, w.refused(t, "dlq_replay", map[string]any{"topic": "no-such-topic"}), "no-such-topic.dlq")
	})
}

// TestStreamableHTTPNeedsTheBearerToken serves the same server at /mcp of
// `qiflow run --watch`: without the token, or with a wrong one, nothing is
// answered; with it the SDK's client lists and calls the tools.
func TestStreamableHTTPNeedsTheBearerToken(t *testing.T) {
	p := startPipeline(t)

	for _, h := range []string{"", "Bearer wrong", p.token, "Basic " + p.token} {
		req, err := http.NewRequest(http.MethodPost, p.url()+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "Authorization %q", h)
	}
	_, err := p.httpSession(t, "wrong")
	require.Error(t, err, "the SDK client cannot connect with a wrong token")

	s, err := p.httpSession(t, p.token)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var names []string
	for tool, err := range s.cs.Tools(ctx, nil) {
		require.NoError(t, err)
		names = append(names, tool.Name)
	}
	assert.Subset(t, names, append(readTools, writeTools...))

	var st struct {
		Streams []struct {
			State    string
			Counters map[string]float64
		}
	}
	s.call(t, "streams_status", map[string]any{"window_seconds": 0.2}, &st)
	require.Len(t, st.Streams, 1)
	assert.Equal(t, "ready", st.Streams[0].State)
	assert.Equal(t, p.metric(t, "qiflow_timescale_rows_written_total"), st.Streams[0].Counters["qiflow_timescale_rows_written_total"])

	var topics struct{ Topics []any }
	s.call(t, "topics_status", nil, &topics)
	var cli []any
	require.NoError(t, json.Unmarshal(p.qiflowOK(t, "topics", "status", "--json", "-f", p.file("topics.yaml")), &cli))
	assert.Equal(t, cli, jsonOf(t, topics.Topics), "schema.yaml and topics.yaml are found beside the pipeline")

	assert.Contains(t, s.refused(t, "reload", nil), "--allow-writes", "the HTTP server is read-only without --mcp-allow-writes")
}

func reloadsOf(t *testing.T, p *pipeline) []any {
	var api struct{ Reloads []any }
	p.getJSON(t, "/reloads", &api)
	return api.Reloads
}

func queryStrings(t *testing.T, dsn, sql string, args ...any) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}
