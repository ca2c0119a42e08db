package timescale_output

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/profile"
)

// useProfile installs the built-in development profile, changed by edit,
// for the rest of the test.
func useProfile(t *testing.T, edit func(*profile.Profile)) {
	t.Helper()
	p, err := profile.Builtin(profile.Development)
	require.NoError(t, err)
	edit(p)
	t.Cleanup(profile.Set(p))
}

// parse parses yaml as a user's config without connecting.
func parse(t *testing.T, yaml string) (*output, error) {
	t.Helper()
	conf, err := spec().ParseYAML(yaml, service.NewEnvironment())
	require.NoError(t, err)
	return newOutputFromConfig(conf, service.MockResources())
}

func TestDSNAndPoolSizeFallBackToTheProfile(t *testing.T) {
	dsn := database(t)
	useProfile(t, func(p *profile.Profile) {
		p.Database.URL = profile.Secret(dsn)
		p.Database.PoolSize = 3
	})
	o := newOutput(t, "table: crypto_prices\nformat: price\n")
	assert.Equal(t, 3, o.conf.poolSize)
	assert.Empty(t, write(t, o, service.MessageBatch{price("btc", 1, `"1.5"`)}))
	assert.Equal(t, 1, count(t, dsn, "crypto_prices"), "written to the profile's database")

	useProfile(t, func(p *profile.Profile) {
		p.Database.URL = "postgres://nobody@127.0.0.1:1/nowhere"
		p.Database.PoolSize = 3
	})
	o = newOutput(t, "dsn: "+dsn+"\npool_size: 2\ntable: crypto_prices\nformat: price\n")
	assert.Equal(t, 2, o.conf.poolSize, "the pipeline's value wins")
	assert.Empty(t, write(t, o, service.MessageBatch{price("eth", 2, `"2.5"`)}))
	assert.Equal(t, 2, count(t, dsn, "crypto_prices"), "written to the pipeline's database")
}

// The profile's password (here from a file) completes a connection string
// without one; a connection string's own password wins, and then the file
// is not even read.
func TestProfilePasswordCompletesADSNWithoutOne(t *testing.T) {
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	secretFile := filepath.Join(t.TempDir(), "database")
	require.NoError(t, os.WriteFile(secretFile, []byte("db-secret\n"), 0o600))
	useProfile(t, func(p *profile.Profile) { p.Database.PasswordFile = secretFile })

	cases := []struct{ yaml, password string }{
		{"dsn: postgres://qiflow@db:5432/qiflow\n", "db-secret"},
		{"", "db-secret"}, // the profile's URL has none either
		{"dsn: postgres://qiflow:own@db:5432/qiflow\n", "own"},
		{"dsn: host=db user=qiflow password=own\n", "own"},
	}
	for _, c := range cases {
		o, err := parse(t, c.yaml+"table: crypto_prices\nformat: price\n")
		require.NoError(t, err)
		cfg, err := o.conf.poolConfig()
		require.NoError(t, err)
		assert.Equal(t, c.password, cfg.ConnConfig.Password, c.yaml)
		assert.Equal(t, int32(4), cfg.MaxConns, "the development profile's pool size")
	}

	useProfile(t, func(p *profile.Profile) { p.Database.PasswordFile = filepath.Join(t.TempDir(), "missing") })
	_, err := parse(t, "dsn: postgres://qiflow:own@db/qiflow\ntable: crypto_prices\nformat: price\n")
	assert.NoError(t, err, "a DSN with its own password never reads the profile's file")
	_, err = parse(t, "table: crypto_prices\nformat: price\n")
	assert.ErrorContains(t, err, "profile development: database.password_file: open ")
}

// A connection string that does not parse is reported without its
// password.
func TestBadDSNErrorHidesThePassword(t *testing.T) {
	_, err := parse(t, "dsn: postgres://qiflow:hunter2@db:notaport/qiflow\ntable: crypto_prices\nformat: price\n")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

// TestSchemaRegistryFallsBackToTheProfile: with no schema_registry field,
// the registry, user and password file come from the profile; a field set
// in the pipeline wins.
func TestSchemaRegistryFallsBackToTheProfile(t *testing.T) {
	dsn := database(t)
	reg := startRegistry(t)
	id := reg.registerJSONSchema(t, "crypto-prices-json-value", shippedSchema(t, "price.schema.json"))
	secret := filepath.Join(t.TempDir(), "sr-password")
	require.NoError(t, os.WriteFile(secret, []byte("s3cret\n"), 0o600))
	useProfile(t, func(p *profile.Profile) {
		p.SchemaRegistry = profile.SchemaRegistry{URL: reg.url(), Username: "ingest", PasswordFile: secret}
	})
	o := newOutput(t, "dsn: "+dsn+"\ntable: crypto_prices\nformat: price\nencoding: json_schema\n")
	assert.Empty(t, write(t, o, service.MessageBatch{framedMessage(jsonFrame(id, jsonPrice("profiled", 0, "1", nil)), 0)}))
	assert.Equal(t, 1, count(t, dsn, "crypto_prices"))

	conf, err := spec().ParseYAML("dsn: "+dsn+"\ntable: crypto_prices\nformat: price\nencoding: json_schema\nschema_registry:\n  url: http://127.0.0.1:1\n", service.NewEnvironment())
	require.NoError(t, err)
	rcConf, err := parseRegistry(conf)
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:1", rcConf.URL, "the pipeline's value wins")
	assert.Equal(t, "ingest", rcConf.Username)
	assert.Equal(t, "s3cret", rcConf.Password, "read from the profile's password file")
}
