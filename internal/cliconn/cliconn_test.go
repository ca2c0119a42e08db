package cliconn

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// withProfile installs the development profile, changed by edit, for the
// test.
func withProfile(t *testing.T, edit func(*profile.Profile)) {
	p, err := profile.Builtin(profile.Development)
	require.NoError(t, err)
	edit(p)
	t.Cleanup(profile.Set(p))
}

func TestTheBrokersFlagWinsOverTheProfile(t *testing.T) {
	withProfile(t, func(p *profile.Profile) { p.Redpanda.Brokers = []string{"profile:9092"} })
	for flag, want := range map[string][]string{
		"":                   {"profile:9092"},
		"a:9092, b:9092":     {"a:9092", "b:9092"},
		" , flag-only:9092 ": {"flag-only:9092"},
	} {
		opts, err := KafkaOptions(flag)
		require.NoError(t, err)
		cl, err := kgo.NewClient(opts...)
		require.NoError(t, err)
		assert.Equal(t, want, cl.OptValue(kgo.SeedBrokers), "flag %q", flag)
		cl.Close()
	}
}

func TestNoBrokersIsAClearError(t *testing.T) {
	withProfile(t, func(p *profile.Profile) { p.Redpanda.Brokers = nil })
	_, err := KafkaOptions("")
	assert.ErrorContains(t, err, "REDPANDA_BROKERS")
}

func TestAnUnknownMechanismIsRefused(t *testing.T) {
	withProfile(t, func(p *profile.Profile) {
		p.Redpanda.SASL.User, p.Redpanda.SASL.Mechanism = "u", "GSSAPI"
	})
	_, err := KafkaOptions("localhost:9092")
	assert.ErrorContains(t, err, "GSSAPI")
}

func TestTheDatabaseComesFromTheProfileUnlessGiven(t *testing.T) {
	dsn := testenv.Database(t)
	withProfile(t, func(p *profile.Profile) { p.Database.URL = profile.Secret(dsn) })
	pool, err := Database(context.Background(), "")
	require.NoError(t, err)
	var one int
	require.NoError(t, pool.QueryRow(context.Background(), "SELECT 1").Scan(&one))
	pool.Close()

	_, err = Database(context.Background(), "postgres://nobody@127.0.0.1:1/none?connect_timeout=2")
	assert.ErrorContains(t, err, "connect to the database nobody@127.0.0.1/none")
}
