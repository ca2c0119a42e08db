package profile_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/profile"
)

// setup is the world a Load runs in: environment variables and an
// optional qiflow.yaml in the working directory. $DIR in variables and in
// the file stands for that directory.
type setup struct {
	env      map[string]string
	file     string // content of ./qiflow.yaml; empty: no file
	opts     profile.Options
	filesIn  map[string]string // other files, by name, in the same directory
	fileFlag string            // name of a file (from filesIn) for --profile-file
}

func (s setup) load(t *testing.T) (*profile.Profile, error) {
	t.Helper()
	dir := t.TempDir()
	if s.file != "" {
		content := strings.ReplaceAll(s.file, "$DIR", dir)
		require.NoError(t, os.WriteFile(filepath.Join(dir, profile.DefaultFile), []byte(content), 0o600))
	}
	for name, content := range s.filesIn {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600))
	}
	o := s.opts
	o.Dir = dir
	if s.fileFlag != "" {
		o.File = filepath.Join(dir, s.fileFlag)
	}
	var environ []string
	for k, v := range s.env {
		environ = append(environ, k+"="+strings.ReplaceAll(v, "$DIR", dir))
	}
	o.Environ = func() []string { return environ }
	return profile.Load(o)
}

// entry returns the value and source of key as `qiflow profile` shows them.
func entry(t *testing.T, p *profile.Profile, key string) (value, source string) {
	t.Helper()
	for _, e := range p.Entries() {
		if e.Key == key {
			return e.Value, e.Source
		}
	}
	t.Fatalf("no entry %s", key)
	return "", ""
}

// Each layer overrides the ones before it: built-in defaults < the file's
// section < DESIGN.md variables < QIFLOW_ variables < --profile-set.
func TestPrecedence(t *testing.T) {
	const file = `
development:
  redpanda: { brokers: [ "file:9092" ], client_id: from-file }
  database: { pool_size: 6 }
production:
  redpanda: { brokers: "prod-a:9093, prod-b:9093" }
`
	cases := []struct {
		name  string
		setup setup
		key   string
		value string
		// source is the start of the source shown.
		source string
	}{
		{"built-in default", setup{}, "redpanda.brokers", "localhost:9092", "default"},
		{"built-in development pool", setup{}, "database.pool_size", "4", "default"},
		{"built-in staging", setup{env: map[string]string{"QIFLOW_ENV": "staging"}}, "database.pool_size", "8", "default"},
		{"built-in production TLS", setup{env: map[string]string{"QIFLOW_ENV": "production"}}, "redpanda.tls.enabled", "true", "default"},
		{"built-in production SASL", setup{env: map[string]string{"QIFLOW_ENV": "production"}}, "redpanda.sasl.mechanism", "SCRAM-SHA-512", "default"},
		{"built-in production timeout", setup{env: map[string]string{"QIFLOW_ENV": "production"}}, "redpanda.request_timeout", "30s", "default"},
		{"--profile beats QIFLOW_ENV", setup{env: map[string]string{"QIFLOW_ENV": "production"}, opts: profile.Options{Name: "staging"}}, "database.pool_size", "8", "default"},
		{"file section over default", setup{file: file}, "redpanda.brokers", "file:9092", "file "},
		{"file leaves other keys at default", setup{file: file}, "redpanda.dial_timeout", "10s", "default"},
		{"file section chosen by QIFLOW_ENV", setup{file: file, env: map[string]string{"QIFLOW_ENV": "production"}}, "redpanda.brokers", "prod-a:9093,prod-b:9093", "file "},
		{"section missing from file keeps its defaults", setup{file: file, env: map[string]string{"QIFLOW_ENV": "staging"}}, "redpanda.brokers", "redpanda:9093", "default"},
		{"contract variable over file", setup{file: file, env: map[string]string{"REDPANDA_BROKERS": "env:9092"}}, "redpanda.brokers", "env:9092", "env REDPANDA_BROKERS"},
		{"QIFLOW_ variable over contract", setup{file: file, env: map[string]string{"REDPANDA_BROKERS": "env:9092", "QIFLOW_REDPANDA_BROKERS": "q1:9092,q2:9092"}}, "redpanda.brokers", "q1:9092,q2:9092", "env QIFLOW_REDPANDA_BROKERS"},
		{"flag over QIFLOW_ variable", setup{env: map[string]string{"QIFLOW_REDPANDA_BROKERS": "q:9092"}, opts: profile.Options{Sets: []string{"redpanda.brokers=flag:9092"}}}, "redpanda.brokers", "flag:9092", "flag --profile-set"},
		{"last flag wins", setup{opts: profile.Options{Sets: []string{"database.pool_size=2", "database.pool_size=3"}}}, "database.pool_size", "3", "flag --profile-set"},
		{"empty variable is unset", setup{env: map[string]string{"REDPANDA_BROKERS": "env:9092", "QIFLOW_REDPANDA_BROKERS": ""}}, "redpanda.brokers", "env:9092", "env REDPANDA_BROKERS"},
		{"QIFLOW_DATABASE_POOL_SIZE", setup{file: file, env: map[string]string{"QIFLOW_DATABASE_POOL_SIZE": "12"}}, "database.pool_size", "12", "env QIFLOW_DATABASE_POOL_SIZE"},
		{"DATABASE_URL", setup{env: map[string]string{"DATABASE_URL": "postgres://u@db:5432/x"}}, "database.url", "postgres://u@db:5432/x", "env DATABASE_URL"},
		{"REDPANDA_TLS", setup{env: map[string]string{"REDPANDA_TLS": "true"}}, "redpanda.tls.enabled", "true", "env REDPANDA_TLS"},
		{"QIFLOW_ TLS off over production", setup{env: map[string]string{"QIFLOW_ENV": "production", "QIFLOW_REDPANDA_TLS_ENABLED": "false"}}, "redpanda.tls.enabled", "false", "env QIFLOW_REDPANDA_TLS_ENABLED"},
		{"REDPANDA_USERNAME", setup{env: map[string]string{"REDPANDA_USERNAME": "ingest"}}, "redpanda.sasl.user", "ingest", "env REDPANDA_USERNAME"},
		{"mechanism normalised", setup{env: map[string]string{"REDPANDA_SASL_MECHANISM": "scram-sha-256"}}, "redpanda.sasl.mechanism", "SCRAM-SHA-256", "env REDPANDA_SASL_MECHANISM"},
		{"duration by flag", setup{opts: profile.Options{Sets: []string{"redpanda.dial_timeout=1m30s"}}}, "redpanda.dial_timeout", "1m30s", "flag --profile-set"},
		{"URL without password by flag", setup{opts: profile.Options{Sets: []string{"database.url=postgres://u@h/db"}}}, "database.url", "postgres://u@h/db", "flag --profile-set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.setup.load(t)
			require.NoError(t, err)
			value, source := entry(t, p, c.key)
			assert.Equal(t, c.value, value)
			assert.True(t, strings.HasPrefix(source, c.source), "source %q, want %q…", source, c.source)
		})
	}
}

// The profile file is --profile-file, else QIFLOW_CONFIG, else
// ./qiflow.yaml when it exists, else none (built-in defaults).
func TestProfileFileLookup(t *testing.T) {
	section := func(id string) string {
		return fmt.Sprintf("development:\n  redpanda:\n    client_id: %s\n", id)
	}
	files := map[string]string{"flag.yaml": section("flag"), "env.yaml": section("env")}
	cases := []struct {
		name     string
		setup    setup
		clientID string
		fileFrom string
	}{
		{"none", setup{}, "qiflow", "none: built-in defaults"},
		{"working directory", setup{file: section("cwd")}, "cwd", "found in the working directory"},
		{"QIFLOW_CONFIG over working directory", setup{file: section("cwd"), filesIn: files, env: map[string]string{"QIFLOW_CONFIG": "$DIR/env.yaml"}}, "env", "env QIFLOW_CONFIG"},
		{"--profile-file over QIFLOW_CONFIG", setup{file: section("cwd"), filesIn: files, env: map[string]string{"QIFLOW_CONFIG": "$DIR/env.yaml"}, fileFlag: "flag.yaml"}, "flag", "flag --profile-file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := c.setup.load(t)
			require.NoError(t, err)
			assert.Equal(t, c.clientID, p.Redpanda.ClientID)
			var out bytes.Buffer
			require.NoError(t, p.Describe(&out))
			assert.Contains(t, out.String(), c.fileFrom)
		})
	}
}

// A password and its password_file: the higher layer's wins, so a variable
// overrides a file named in qiflow.yaml and the other way round.
func TestSecretFromFileOrEnvironment(t *testing.T) {
	secrets := map[string]string{"redpanda": "file-secret\n", "db": "db-file-secret\n"}
	cases := []struct {
		name       string
		setup      setup
		want       string
		passSource string
		fileSource string
	}{
		{
			name:       "file named in qiflow.yaml",
			setup:      setup{file: "development:\n  redpanda:\n    sasl:\n      password_file: $DIR/redpanda\n"},
			want:       "file-secret",
			passSource: "default",
			fileSource: "file ",
		},
		{
			name:       "REDPANDA_PASSWORD over a file named in qiflow.yaml",
			setup:      setup{file: "development:\n  redpanda:\n    sasl:\n      password_file: $DIR/redpanda\n", env: map[string]string{"REDPANDA_PASSWORD": "env-secret"}},
			want:       "env-secret",
			passSource: "env REDPANDA_PASSWORD",
			fileSource: "unused: redpanda.sasl.password is set higher up",
		},
		{
			name:       "QIFLOW_REDPANDA_SASL_PASSWORD_FILE over REDPANDA_PASSWORD",
			setup:      setup{env: map[string]string{"REDPANDA_PASSWORD": "env-secret", "QIFLOW_REDPANDA_SASL_PASSWORD_FILE": "$DIR/redpanda"}},
			want:       "file-secret",
			passSource: "unused: redpanda.sasl.password_file is set higher up",
			fileSource: "env QIFLOW_REDPANDA_SASL_PASSWORD_FILE",
		},
		{
			name:       "QIFLOW_REDPANDA_SASL_PASSWORD",
			setup:      setup{env: map[string]string{"QIFLOW_REDPANDA_SASL_PASSWORD": "qiflow-secret"}},
			want:       "qiflow-secret",
			passSource: "env QIFLOW_REDPANDA_SASL_PASSWORD",
			fileSource: "default",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.setup.filesIn = secrets
			p, err := c.setup.load(t)
			require.NoError(t, err)
			got, err := p.Redpanda.SASL.ResolvePassword()
			require.NoError(t, err)
			assert.Equal(t, c.want, got.Reveal())
			_, passSource := entry(t, p, "redpanda.sasl.password")
			_, fileSource := entry(t, p, "redpanda.sasl.password_file")
			assert.True(t, strings.HasPrefix(passSource, c.passSource), "password source %q", passSource)
			assert.True(t, strings.HasPrefix(fileSource, c.fileSource), "password_file source %q", fileSource)
		})
	}

	t.Run("database password file", func(t *testing.T) {
		p, err := setup{filesIn: secrets, env: map[string]string{"QIFLOW_DATABASE_PASSWORD_FILE": "$DIR/db"}}.load(t)
		require.NoError(t, err)
		got, err := p.Database.ResolvePassword()
		require.NoError(t, err)
		assert.Equal(t, "db-file-secret", got.Reveal(), "the trailing newline is not part of it")
	})
	t.Run("missing or empty file is an error when used", func(t *testing.T) {
		p, err := setup{filesIn: map[string]string{"empty": "\n"}, env: map[string]string{
			"QIFLOW_REDPANDA_SASL_PASSWORD_FILE": "$DIR/missing", "QIFLOW_DATABASE_PASSWORD_FILE": "$DIR/empty",
		}}.load(t)
		require.NoError(t, err, "files are read when used, so a rotated secret is picked up")
		_, err = p.Redpanda.SASL.ResolvePassword()
		assert.ErrorContains(t, err, "redpanda.sasl.password_file: open ")
		_, err = p.Database.ResolvePassword()
		assert.ErrorContains(t, err, "database.password_file: ")
		assert.ErrorContains(t, err, "is empty")
		assert.Error(t, p.Check())
	})
	t.Run("both in one layer is an error", func(t *testing.T) {
		_, err := setup{env: map[string]string{"QIFLOW_DATABASE_PASSWORD": "a", "QIFLOW_DATABASE_PASSWORD_FILE": "/b"}}.load(t)
		assert.ErrorContains(t, err, "database.password and database.password_file are both set (env QIFLOW_DATABASE_PASSWORD); set one")
	})
}

func TestLoadErrorsNameTheirSource(t *testing.T) {
	cases := []struct {
		name  string
		setup setup
		want  string
	}{
		{"unknown QIFLOW_ENV", setup{env: map[string]string{"QIFLOW_ENV": "prod"}}, `unknown profile "prod" (env QIFLOW_ENV): want development, staging, production`},
		{"unknown --profile", setup{opts: profile.Options{Name: "qa"}}, `unknown profile "qa" (flag --profile)`},
		{"unknown section", setup{file: "qa:\n  database: { pool_size: 1 }\n"}, `unknown section "qa"`},
		{"unknown key", setup{file: "development:\n  database: { pool_sise: 1 }\n"}, "development.database.pool_sise: unknown key"},
		{"bad type in file", setup{file: "development:\n  database: { pool_size: many }\n"}, `development.database.pool_size: "many" is not an integer`},
		{"bad duration in file", setup{file: "development:\n  redpanda: { dial_timeout: 10 }\n"}, "development.redpanda.dial_timeout: 10 is not a duration"},
		{"bad QIFLOW_ value", setup{env: map[string]string{"QIFLOW_DATABASE_POOL_SIZE": "eight"}}, `QIFLOW_DATABASE_POOL_SIZE: "eight" is not an integer`},
		{"bad contract value", setup{env: map[string]string{"REDPANDA_TLS": "yes please"}}, `REDPANDA_TLS: "yes please" is not true or false`},
		{"unknown QIFLOW_ variable", setup{env: map[string]string{"QIFLOW_REDPANDA_BROKER": "x:1"}}, "unknown variable QIFLOW_REDPANDA_BROKER"},
		{"unknown mechanism", setup{env: map[string]string{"REDPANDA_SASL_MECHANISM": "GSSAPI"}}, `REDPANDA_SASL_MECHANISM: unknown SASL mechanism "GSSAPI"`},
		{"out of range", setup{opts: profile.Options{Sets: []string{"database.pool_size=0"}}}, "database.pool_size (flag --profile-set): must be at least 1"},
		{"no brokers", setup{file: "development:\n  redpanda: { brokers: [] }\n"}, "redpanda.brokers (file "},
		{"flag without =", setup{opts: profile.Options{Sets: []string{"database.pool_size"}}}, "want KEY=VALUE"},
		{"unknown flag key", setup{opts: profile.Options{Sets: []string{"database.size=1"}}}, "--profile-set database.size: unknown key"},
		{"password by flag", setup{opts: profile.Options{Sets: []string{"redpanda.sasl.password=hunter2"}}}, "--profile-set redpanda.sasl.password: secrets are not taken from flags"},
		{"URL with password by flag", setup{opts: profile.Options{Sets: []string{"database.url=postgres://u:hunter2@h/db"}}}, "use QIFLOW_DATABASE_URL or a password_file"},
		{"missing --profile-file", setup{fileFlag: "absent.yaml"}, "absent.yaml: open "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.setup.load(t)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.NotContains(t, err.Error(), "hunter2", "an error never repeats a secret")
		})
	}
}

// The shipped qiflow.yaml and the built-in defaults are the same profiles,
// so that qiflow behaves alike with and without the file.
func TestShippedFileEqualsBuiltinDefaults(t *testing.T) {
	for _, name := range profile.Names {
		t.Run(name, func(t *testing.T) {
			builtin, err := profile.Builtin(name)
			require.NoError(t, err)
			shipped, err := profile.Load(profile.Options{Name: name, File: "../../qiflow.yaml", Environ: func() []string { return nil }})
			require.NoError(t, err)
			assert.Equal(t, builtin.Redpanda, shipped.Redpanda)
			assert.Equal(t, builtin.Database, shipped.Database)
		})
	}
}

func TestBuiltinDefaultsAreSensible(t *testing.T) {
	dev, err := profile.Builtin(profile.Development)
	require.NoError(t, err)
	prod, err := profile.Builtin(profile.Production)
	require.NoError(t, err)
	assert.Equal(t, []string{"localhost:9092"}, dev.Redpanda.Brokers)
	assert.False(t, dev.Redpanda.TLS.Enabled)
	assert.Equal(t, "postgres://postgres@localhost:5432/qiflow", dev.Database.URL.Reveal(), "DESIGN.md's DATABASE_URL default")
	assert.True(t, prod.Redpanda.TLS.Enabled)
	assert.Equal(t, profile.MechanismScramSHA512, prod.Redpanda.SASL.Mechanism)
	assert.Greater(t, prod.Database.PoolSize, dev.Database.PoolSize)
	assert.Greater(t, prod.Redpanda.RequestTimeout, dev.Redpanda.RequestTimeout)
	assert.Equal(t, 10*time.Second, dev.Redpanda.RequestTimeout, "development keeps the plugins' former timeouts")
}

// Secrets never print: not through any fmt verb, slog, JSON, the profile's
// String or its table.
func TestSecretsAreRedactedEverywhere(t *testing.T) {
	const pass, dbPass = "sasl-hunter2", "db-hunter2"
	p, err := setup{env: map[string]string{
		"QIFLOW_ENV":                    "production",
		"REDPANDA_USERNAME":             "ingest",
		"QIFLOW_REDPANDA_SASL_PASSWORD": pass,
		"DATABASE_URL":                  "postgres://qiflow:" + dbPass + "@db:5432/qiflow?sslmode=verify-full",
		"QIFLOW_DATABASE_PASSWORD":      dbPass,
	}}.load(t)
	require.NoError(t, err)

	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%10s"} {
		fmt.Fprintf(&out, verb+"\n", p)
		fmt.Fprintf(&out, verb+"\n", *p)
		fmt.Fprintf(&out, verb+"\n", p.Redpanda.SASL)
		fmt.Fprintf(&out, verb+"\n", p.Redpanda.SASL.Password)
	}
	fmt.Fprintln(&out, p.Database)
	slog.New(slog.NewJSONHandler(&out, nil)).Info("profile", "p", p, "sasl", p.Redpanda.SASL, "password", p.Redpanda.SASL.Password)
	slog.New(slog.NewTextHandler(&out, nil)).Info("profile", "db", p.Database, "password", p.Database.Password)
	raw, err := json.Marshal(p.Database)
	require.NoError(t, err)
	out.Write(raw)
	require.NoError(t, p.Describe(&out))

	assert.NotContains(t, out.String(), pass)
	assert.NotContains(t, out.String(), dbPass)
	assert.Contains(t, out.String(), profile.Redacted)
	assert.Contains(t, p.String(), `production: brokers redpanda-0:9093,redpanda-1:9093,redpanda-2:9093 (TLS, SASL SCRAM-SHA-512 as "ingest"), database postgres://qiflow:xxxxx@db:5432/qiflow?sslmode=verify-full (pool 16)`)
	assert.Equal(t, pass, p.Redpanda.SASL.Password.Reveal(), "the client still gets it")
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"":                                     "",
		"postgres://u@h:5432/db":               "postgres://u@h:5432/db",
		"postgres://u:s3cret@h:5432/db":        "postgres://u:xxxxx@h:5432/db",
		"postgresql://u:s3cret@h/db?sslmode=x": "postgresql://u:xxxxx@h/db?sslmode=x",
		"postgres://h/db?password=s3cret":      "postgres://h/db?password=xxxxx",
		"host=h user=u password=s3cret":        "host=h user=u password=xxxxx",
		"host=h password='s3 cret' user=u":     "host=h password=xxxxx user=u",
		"postgres://u:s3cret@[::1/db":          profile.Redacted,
	}
	for in, want := range cases {
		assert.Equal(t, want, profile.RedactURL(in), in)
		assert.Equal(t, want != in, profile.HasPassword(in), in)
	}
}

// Current is the installed profile; before one is installed it is loaded
// from the environment on each call, so tests that set variables see them.
func TestCurrentAndSet(t *testing.T) {
	t.Setenv("QIFLOW_CONFIG", "")
	t.Setenv("QIFLOW_ENV", "")
	t.Chdir(t.TempDir())
	t.Setenv("QIFLOW_REDPANDA_CLIENT_ID", "from-env")
	p, err := profile.Current()
	require.NoError(t, err)
	assert.Equal(t, "from-env", p.Redpanda.ClientID)

	staging, err := profile.Builtin(profile.Staging)
	require.NoError(t, err)
	restore := profile.Set(staging)
	p, err = profile.Current()
	require.NoError(t, err)
	assert.Same(t, staging, p)
	restore()

	t.Setenv("QIFLOW_ENV", "bogus")
	_, err = profile.Current()
	assert.ErrorContains(t, err, `unknown profile "bogus"`)
}

func TestAPipelineNamedQiflowYAMLIsNoProfileFile(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "qiflow.yaml"), []byte("input:\n  generate: {mapping: 'root = 1'}\noutput:\n  drop: {}\n"), 0o600))
	p, err := profile.Load(profile.Options{Dir: dir, Environ: func() []string { return nil }})
	require.NoError(t, err, "every command still works in that directory")
	assert.Empty(t, p.File)

	require.NoError(t, os.WriteFile(filepath.Join(dir, "qiflow.yaml"), []byte("prodution:\n  database: { pool_size: 3 }\n"), 0o600))
	_, err = profile.Load(profile.Options{Dir: dir, Environ: func() []string { return nil }})
	assert.ErrorContains(t, err, `unknown section "prodution"`, "a profile file with a typo is still an error")
}

func TestCheckWantsAUserForSASL(t *testing.T) {
	p, err := profile.Load(profile.Options{Name: profile.Production, Environ: func() []string { return nil }})
	require.NoError(t, err)
	assert.ErrorContains(t, p.Check(), "redpanda.sasl.mechanism is SCRAM-SHA-512 but no user is set")

	p, err = profile.Load(profile.Options{Name: profile.Production, Environ: func() []string { return []string{"REDPANDA_USERNAME=ingest"} }})
	require.NoError(t, err)
	assert.NoError(t, p.Check())
}
