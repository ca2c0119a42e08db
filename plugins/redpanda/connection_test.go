package redpanda

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/testenv"
)

// useProfile installs the built-in profile name, changed by edit, for the
// rest of the test.
func useProfile(t *testing.T, name string, edit func(*profile.Profile)) {
	t.Helper()
	p, err := profile.Builtin(name)
	require.NoError(t, err)
	if edit != nil {
		edit(p)
	}
	t.Cleanup(profile.Set(p))
}

func parseInputConnection(t *testing.T, yaml string) (connection, error) {
	t.Helper()
	conf, err := inputSpec().ParseYAML("topics: [ t ]\nconsumer_group: g\n"+yaml, nil)
	require.NoError(t, err)
	return parseConnection(conf, inFieldRequestTimeout)
}

// A pipeline field wins; a field the pipeline leaves out (or empty) comes
// from the profile.
func TestConnectionFallsBackToTheProfile(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "redpanda")
	require.NoError(t, os.WriteFile(secretFile, []byte("from-file\n"), 0o600))
	useProfile(t, profile.Production, func(p *profile.Profile) {
		p.Redpanda.Brokers = []string{"prof-a:9093", "prof-b:9093"}
		p.Redpanda.SASL.User = "ingest"
		p.Redpanda.SASL.PasswordFile = secretFile
	})

	cases := []struct {
		name  string
		yaml  string
		check func(t *testing.T, c connection)
	}{
		{"everything from the profile", ``, func(t *testing.T, c connection) {
			assert.Equal(t, []string{"prof-a:9093", "prof-b:9093"}, c.seeds)
			assert.Equal(t, "qiflow-production", c.clientID)
			assert.NotNil(t, c.tls, "production turns TLS on")
			require.NotNil(t, c.sasl)
			assert.Equal(t, "SCRAM-SHA-512", c.sasl.Name())
			assert.Equal(t, "ingest", c.saslUser)
			assert.Equal(t, 15*time.Second, c.dialTimeout)
			assert.Equal(t, 30*time.Second, c.requestTimeout)
			assert.Equal(t, 30, c.retries)
		}},
		{"an empty seed list, as from ${REDPANDA_BROKERS:}, means the profile's", "seed_brokers: [ \"\" ]\n", func(t *testing.T, c connection) {
			assert.Equal(t, []string{"prof-a:9093", "prof-b:9093"}, c.seeds)
		}},
		{"explicit fields win", `
seed_brokers: [ "mine:9092" ]
client_id: mine
dial_timeout: 1s
request_timeout: 2s
request_retries: 3
sasl: { mechanism: PLAIN, user: me, password: pw }
`, func(t *testing.T, c connection) {
			assert.Equal(t, []string{"mine:9092"}, c.seeds)
			assert.Equal(t, "mine", c.clientID)
			assert.Equal(t, "PLAIN", c.sasl.Name())
			assert.Equal(t, "me", c.saslUser)
			assert.Equal(t, time.Second, c.dialTimeout)
			assert.Equal(t, 2*time.Second, c.requestTimeout)
			assert.Equal(t, 3, c.retries)
		}},
		{"SASL fields fall back one by one", "sasl: { mechanism: SCRAM-SHA-256 }\n", func(t *testing.T, c connection) {
			assert.Equal(t, "SCRAM-SHA-256", c.sasl.Name())
			assert.Equal(t, "ingest", c.saslUser)
		}},
		{"mechanism none turns the profile's SASL off", "sasl: { mechanism: none }\n", func(t *testing.T, c connection) {
			assert.Nil(t, c.sasl)
		}},
		{"a pipeline enabling TLS uses its own settings", "tls: { enabled: true, skip_cert_verify: true }\n", func(t *testing.T, c connection) {
			require.NotNil(t, c.tls)
			assert.True(t, c.tls.InsecureSkipVerify)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, err := parseInputConnection(t, c.yaml)
			require.NoError(t, err)
			c.check(t, conn)
			assert.NotContains(t, conn.describe(), "from-file")
		})
	}

	t.Run("the output's timeout is its request timeout", func(t *testing.T) {
		conf, err := outputSpec().ParseYAML("topic: t\n", nil)
		require.NoError(t, err)
		w, err := newWriterFromConfig(conf, service.MockResources())
		require.NoError(t, err)
		assert.Equal(t, 30*time.Second, w.timeout)
		conf, err = outputSpec().ParseYAML("topic: t\ntimeout: 3s\n", nil)
		require.NoError(t, err)
		w, err = newWriterFromConfig(conf, service.MockResources())
		require.NoError(t, err)
		assert.Equal(t, 3*time.Second, w.timeout)
	})
}

func TestConnectionErrorsNameTheProfile(t *testing.T) {
	t.Run("SASL without a user", func(t *testing.T) {
		useProfile(t, profile.Production, nil)
		_, err := parseInputConnection(t, "")
		assert.ErrorContains(t, err, "sasl: mechanism SCRAM-SHA-512 needs a user: set sasl.user, QIFLOW_REDPANDA_SASL_USER or REDPANDA_USERNAME (profile production)")
	})
	t.Run("unreadable password file", func(t *testing.T) {
		useProfile(t, profile.Development, func(p *profile.Profile) {
			p.Redpanda.SASL.User = "u"
			p.Redpanda.SASL.PasswordFile = filepath.Join(t.TempDir(), "missing")
		})
		_, err := parseInputConnection(t, "")
		assert.ErrorContains(t, err, "profile development: redpanda.sasl.password_file: open ")
	})
	t.Run("unreadable CA file", func(t *testing.T) {
		useProfile(t, profile.Development, func(p *profile.Profile) {
			p.Redpanda.TLS = profile.TLS{Enabled: true, RootCAsFile: filepath.Join(t.TempDir(), "ca.pem")}
		})
		_, err := parseInputConnection(t, "")
		assert.ErrorContains(t, err, "redpanda.tls.root_cas_file: open ")
	})
}

// A pipeline that names only its topics and group reaches a SASL broker
// with the profile's brokers and credentials, the password from a file.
func TestInputConnectsWithTheProfilesBrokersAndCredentials(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithSASL("PLAIN", "ingest", "file-secret"), testenv.WithTopics(2, "in"))
	broker.Produce(t, "in", &kgo.Record{Value: []byte("one")}, &kgo.Record{Value: []byte("two")})
	secretFile := filepath.Join(t.TempDir(), "redpanda")
	require.NoError(t, os.WriteFile(secretFile, []byte("file-secret\n"), 0o600))
	useProfile(t, profile.Development, func(p *profile.Profile) {
		p.Redpanda.Brokers = broker.Seeds()
		p.Redpanda.SASL = profile.SASL{Mechanism: "PLAIN", User: "ingest", PasswordFile: secretFile}
	})

	got := make(chan string, 2)
	s := startStream(t, `
redpanda:
  topics: [ in ]
  consumer_group: g
  commit_period: 100ms
`, "", func(_ context.Context, batch service.MessageBatch) error {
		for _, m := range batch {
			b, _ := m.AsBytes()
			got <- string(b)
		}
		return nil
	})
	for range 2 {
		select {
		case v := <-got:
			assert.Contains(t, []string{"one", "two"}, v)
		case <-time.After(30 * time.Second):
			t.Fatalf("nothing consumed; log:\n%s", s.logs.String())
		}
	}
	assert.NotContains(t, s.logs.String(), "file-secret")
	require.NoError(t, s.stop(t))
}
