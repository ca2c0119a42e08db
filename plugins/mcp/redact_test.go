package mcp

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/profile"
)

const secret = "hunter2-very-secret"

func secretProfile(t *testing.T) *profile.Profile {
	t.Helper()
	t.Setenv("DATABASE_URL", "postgres://qiflow:"+secret+"@127.0.0.1:1/qiflow?connect_timeout=1")
	t.Setenv("REDPANDA_BROKERS", "127.0.0.1:1")
	t.Setenv("REDPANDA_USERNAME", "ingest")
	t.Setenv("REDPANDA_PASSWORD", secret+"-sasl")
	p, err := profile.Load(profile.Options{})
	require.NoError(t, err)
	return p
}

func TestRedactorMasksTheProfilesSecretsAndAnyConnectionPassword(t *testing.T) {
	r := newRedactor(secretProfile(t))
	cases := map[string]string{
		"connect to postgres://qiflow:" + secret + "@127.0.0.1:1/qiflow?connect_timeout=1: refused": "connect to postgres://qiflow:xxxxx@127.0.0.1:1/qiflow?connect_timeout=1: refused",
		"sasl with " + secret + "-sasl failed":                                                      "sasl with [redacted] failed",
		"a dsn postgres://other:pw2@db:5432/x in a message":                                         "a dsn postgres://other:xxxxx@db:5432/x in a message",
		"nothing to hide": "nothing to hide",
	}
	for in, want := range cases {
		assert.Equal(t, want, r.err(errors.New(in)).Error())
	}
	assert.NoError(t, r.err(nil))
}

func TestRedactorMasksSecretsInConfigs(t *testing.T) {
	r := newRedactor(secretProfile(t))
	in := "output:\n  timescale:\n    dsn: postgres://u:pw3@db/x\n    table: t\n" +
		"  redpanda:\n    sasl:\n      - password: plain-text-pw\n        user: u\n" +
		"input:\n  x:\n    dsn: ${DATABASE_URL}\n    url: http://example.com/feed\n"
	out := r.yaml(in)
	assert.NotContains(t, out, "pw3")
	assert.NotContains(t, out, "plain-text-pw")
	assert.Contains(t, out, `dsn: "postgres://u:xxxxx@db/x"`)
	assert.Contains(t, out, `- password: "[redacted]"`)
	assert.Contains(t, out, "dsn: ${DATABASE_URL}", "a variable reference names no secret")
	assert.Contains(t, out, "url: http://example.com/feed", "a URL without a password is kept")
	assert.Contains(t, out, "table: t")
}

// TestToolErrorsCarryNoSecret calls the tools against services that do not
// answer, with secrets in the profile: every error says what failed, and
// none holds a secret.
func TestToolErrorsCarryNoSecret(t *testing.T) {
	srv, err := New(Config{QiflowURL: "http://127.0.0.1:1", SchemaFile: "../../pipelines/schema.yaml", TopicsFile: "../../pipelines/topics.yaml", Profile: secretProfile(t)})
	require.NoError(t, err)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	require.NoError(t, err)
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test"}, nil).Connect(ctx, ct, nil)
	require.NoError(t, err)
	defer cs.Close()

	calls := map[string]map[string]any{
		"query_range":    {"table": "crypto_prices", "from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"},
		"schema_status":  {},
		"streams_status": {"window_seconds": 0.1},
		"profile":        {},
	}
	for name, args := range calls {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		require.NoError(t, err, name)
		var text string
		for _, c := range res.Content {
			text += c.(*mcp.TextContent).Text
		}
		assert.NotContains(t, text, secret, name)
		if name != "profile" {
			assert.True(t, res.IsError, "%s: %s", name, text)
		}
	}
}

func TestDeadLetterHeadersAreRedacted(t *testing.T) {
	tb := &toolbox{redact: newRedactor(secretProfile(t))}
	dl := tb.deadLetterOf(&kgo.Record{Partition: 0, Offset: 7, Value: []byte(`{"coinId":"x"}`), Headers: []kgo.RecordHeader{
		{Key: headerCategory, Value: []byte("SECURITY")},
		{Key: headerCode, Value: []byte("auth")},
		{Key: headerError, Value: []byte("connect postgres://qiflow:" + secret + "@127.0.0.1:1/qiflow?connect_timeout=1: password authentication failed")},
		{Key: headerSourceOffset, Value: []byte("41")},
	}})
	assert.NotContains(t, dl.Error, secret)
	assert.NotContains(t, dl.Headers[headerError], secret)
	assert.Contains(t, dl.Error, "password authentication failed")
	assert.Equal(t, "SECURITY", dl.Category)
	require.NotNil(t, dl.SourceOffset)
	assert.Equal(t, int64(41), *dl.SourceOffset)
	assert.Equal(t, "utf-8", dl.ValueEncoding)
}
