package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// dbPassword rides in DATABASE_URL (the test cluster trusts every login, so
// it is accepted and ignored); no answer of the server may contain it.
const dbPassword = "mcp-s3cret-pw"

// shipped is where the shipped pipelines live, from this package.
const shipped = "../../pipelines"

// Messages the fixture produces.
const (
	goodPrices = 300
	// btcPerExchange: the first goodPrices/2 messages are bitcoin on
	// binance, one a second from priceBase.
	btcOnBinance = goodPrices / 2
)

// priceBase is the time of the first price: an hour ago, so that the
// shipped retention and columnstore policies leave the rows alone.
var priceBase = time.Now().Add(-time.Hour).Truncate(time.Minute).UTC()

// badPrices are dead-lettered by prices.yaml.
var badPrices = []string{
	`{"coinId":"broken"`,
	`{"coinId":"x","symbol":"X","exchangeId":"binance","usdPrice":"-42","lastUpdated":1,"source":"s","attribution":"a"}`,
}

func priceMessage(i int) []byte {
	coin, exchange := "bitcoin", "binance"
	if i >= btcOnBinance {
		coin, exchange = fmt.Sprintf("coin-%d", i%7), "kraken"
	}
	at := priceBase.Add(time.Duration(i) * time.Second).UnixMilli()
	return fmt.Appendf(nil, `{"coinId":%q,"symbol":"S","exchangeId":%q,"usdPrice":"%d.12345678","lastUpdated":%d,"source":"test","attribution":"qiflow"}`,
		coin, exchange, 60000+i, at)
}

// pipeline is prices.yaml run by `qiflow run --watch` on kfake and
// PostgreSQL, with /mcp served behind a token, after the shipped topics
// and schema were applied with qiflow's own commands.
type pipeline struct {
	bin    string
	env    []string
	broker *testenv.Broker
	dsn    string
	dir    string
	http   string
	token  string
	proc   *testenv.Process
}

func (p *pipeline) file(name string) string { return filepath.Join(p.dir, name) }

func (p *pipeline) url() string { return "http://" + p.http }

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	p := &pipeline{bin: testenv.BuildBinary(t, "./cmd/qiflow"), dir: t.TempDir(), broker: testenv.NewBroker(t)}
	u, err := url.Parse(testenv.Database(t))
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), dbPassword)
	p.dsn = u.String()
	p.env = []string{"REDPANDA_BROKERS=" + p.broker.SeedList(), "DATABASE_URL=" + p.dsn, "QIFLOW_MCP_TOKEN="}
	for _, name := range []string{"prices.yaml", "schema.yaml", "topics.yaml"} {
		raw, err := os.ReadFile(filepath.Join(shipped, name))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(p.file(name), raw, 0o644))
	}
	p.qiflowOK(t, "topics", "apply", "-f", p.file("topics.yaml"))
	p.qiflowOK(t, "schema", "apply", "-f", p.file("schema.yaml"))

	p.broker.ProduceN(t, "crypto-prices", goodPrices, func(i int) *kgo.Record { return &kgo.Record{Value: priceMessage(i)} })
	for _, m := range badPrices {
		p.broker.Produce(t, "crypto-prices", &kgo.Record{Key: []byte("bad"), Value: []byte(m)})
	}

	p.token = "test-token-" + fmt.Sprint(time.Now().UnixNano())
	tokenFile := p.file("mcp.token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(p.token+"\n"), 0o600))
	p.http = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	p.proc = testenv.StartProcess(t, p.bin, p.env, "run", "--watch", "--http-address", p.http, "--mcp-token-file", tokenFile, p.file("prices.yaml"))
	p.broker.WaitForCommit(t, "qiflow-prices", "crypto-prices", 90*time.Second, p.proc.Output)
	require.Eventually(t, func() bool {
		return len(p.broker.EndOffsets(t, "crypto-prices.dlq")) == 1 && p.broker.EndOffsets(t, "crypto-prices.dlq")[0] == int64(len(badPrices))
	},
		30*time.Second, 50*time.Millisecond, "dead letters not produced:\n%s", p.proc.Output())
	return p
}

// qiflowOK runs a qiflow command as a user would and returns its output.
func (p *pipeline) qiflowOK(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(p.bin, args...)
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.Output()
	var stderr string
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = string(ee.Stderr)
	}
	require.NoError(t, err, "qiflow %s: %s%s", strings.Join(args, " "), out, stderr)
	return out
}

// metric sums a counter's samples on qiflow's /metrics. It is the one place
// the tests name a metric: a rename (issue 16) changes the names passed in.
func (p *pipeline) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(p.url() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

// getJSON decodes one of qiflow's JSON endpoints.
func (p *pipeline) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.url() + path)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
}

// stdio starts `qiflow mcp` with args and connects the SDK's client to it
// over its stdin and stdout.
func (p *pipeline) stdio(t *testing.T, args ...string) *session {
	t.Helper()
	args = append([]string{"mcp", "--qiflow-url", p.url(), "--schema-file", p.file("schema.yaml"), "--topics-file", p.file("topics.yaml")}, args...)
	cmd := exec.Command(p.bin, args...)
	cmd.Env = append(os.Environ(), p.env...)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	client := mcp.NewClient(&mcp.Implementation{Name: "qiflow-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	require.NoError(t, err, "connect to qiflow mcp: %s", stderr)
	t.Cleanup(func() {
		_ = cs.Close()
		if t.Failed() {
			t.Logf("stderr of qiflow mcp: %s", stderr)
		}
	})
	return &session{cs: cs}
}

// httpSession connects the SDK's client to /mcp over streamable HTTP with
// the bearer token.
func (p *pipeline) httpSession(t *testing.T, token string) (*session, error) {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "qiflow-test", Version: "1"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transport := &mcp.StreamableClientTransport{
		Endpoint:   p.url() + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{token: token}},
		MaxRetries: -1,
	}
	cs, err := client.Connect(ctx, transport, nil)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = cs.Close() })
	return &session{cs: cs}, nil
}

// bearer adds the Authorization header.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// session is a connected client and everything the server said, kept to
// check that no secret left.
type session struct {
	cs *mcp.ClientSession

	mu    sync.Mutex
	heard []string
}

func (s *session) hear(v any) {
	raw, _ := json.Marshal(v)
	s.mu.Lock()
	s.heard = append(s.heard, string(raw))
	s.mu.Unlock()
}

// call calls a tool and decodes its structured output into out; it fails
// the test on a tool error.
func (s *session) call(t *testing.T, name string, args map[string]any, out any) {
	t.Helper()
	res := s.raw(t, name, args)
	require.False(t, res.IsError, "%s: %s", name, text(res))
	raw, err := json.Marshal(res.StructuredContent)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(raw, out), "%s: %s", name, raw)
}

// refused calls a tool that must fail and returns its error text.
func (s *session) refused(t *testing.T, name string, args map[string]any) string {
	t.Helper()
	res := s.raw(t, name, args)
	require.True(t, res.IsError, "%s must be refused, answered %s", name, text(res))
	return text(res)
}

func (s *session) raw(t *testing.T, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := s.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	require.NoError(t, err, "call %s", name)
	s.hear(res)
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// jsonOf re-encodes v generically, so that two answers compare as JSON.
func jsonOf(t *testing.T, v any) any {
	t.Helper()
	raw, err := json.Marshal(v)
	require.NoError(t, err)
	var out any
	require.NoError(t, json.Unmarshal(raw, &out))
	return out
}
