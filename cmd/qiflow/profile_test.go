package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestSplitProfileFlags(t *testing.T) {
	cases := []struct {
		name string
		args string
		rest string
		opts profile.Options
		err  string
	}{
		{name: "none", args: "qiflow run -c p.yaml", rest: "qiflow run -c p.yaml"},
		{name: "before the command", args: "qiflow --profile production --profile-file /etc/q.yaml run p.yaml", rest: "qiflow run p.yaml",
			opts: profile.Options{Name: "production", File: "/etc/q.yaml"}},
		{name: "after the command, with =", args: "qiflow run --profile=staging p.yaml --profile-set database.pool_size=9", rest: "qiflow run p.yaml",
			opts: profile.Options{Name: "staging", Sets: []string{"database.pool_size=9"}}},
		{name: "repeated sets keep their order", args: "qiflow --profile-set a=1 echo --profile-set b=2", rest: "qiflow echo",
			opts: profile.Options{Sets: []string{"a=1", "b=2"}}},
		{name: "Benthos's flags are untouched", args: "qiflow --log.level debug run -e .env -r res.yaml --set http.address=x:1 -s a=b -c p.yaml --chilled", rest: "qiflow --log.level debug run -e .env -r res.yaml --set http.address=x:1 -s a=b -c p.yaml --chilled"},
		{name: "look-alikes are not profile flags", args: "qiflow run --profiles x --set input.profile=y p.yaml", rest: "qiflow run --profiles x --set input.profile=y p.yaml"},
		{name: "nothing after --", args: "qiflow blobl -- --profile x", rest: "qiflow blobl -- --profile x"},
		{name: "missing value", args: "qiflow run p.yaml --profile", err: "--profile needs a value"},
		{name: "empty value", args: "qiflow --profile-set= run", err: "--profile-set needs a value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rest, opts, err := splitProfileFlags(strings.Fields(c.args))
			if c.err != "" {
				assert.EqualError(t, err, c.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.rest, strings.Join(rest, " "))
			assert.Equal(t, c.opts, opts)
		})
	}
}

// profileTable runs `qiflow profile` and returns its rows, key to value and
// source.
func profileTable(t *testing.T, env []string, args ...string) (map[string][2]string, string) {
	t.Helper()
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	require.NotContains(t, string(out), "Unrecognised command: profile",
		"qiflow profile is not registered: main.go needs service.CLIOptAddCommand(profileCommand())")
	require.NoError(t, err, "%s", out)
	rows := map[string][2]string{}
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 3 {
			rows[fields[0]] = [2]string{fields[1], strings.Join(fields[2:], " ")}
		}
	}
	return rows, string(out)
}

// `qiflow profile` shows each value with its source, whatever the order of
// the layers that set it, and the profile flags work on either side of the
// command.
func TestProfileCommandShowsEachValueAndItsSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "profiles.yaml")
	require.NoError(t, os.WriteFile(file, []byte("staging:\n  database: { pool_size: 11 }\n  redpanda: { client_id: from-file }\n"), 0o600))
	base := []string{"QIFLOW_ENV=", "QIFLOW_CONFIG=", "REDPANDA_BROKERS=", "QIFLOW_REDPANDA_BROKERS=", "DATABASE_URL=", "QIFLOW_DATABASE_POOL_SIZE="}
	cases := []struct {
		name string
		env  []string
		args []string
		want map[string][2]string
	}{
		{"built-in development", nil, []string{"profile"}, map[string][2]string{
			"profile": {"development", "default"}, "redpanda.brokers": {"localhost:9092", "default"}, "database.pool_size": {"4", "default"},
		}},
		{"QIFLOW_ENV", []string{"QIFLOW_ENV=production", "REDPANDA_USERNAME=ingest"}, []string{"profile"}, map[string][2]string{
			"profile": {"production", "env QIFLOW_ENV"}, "redpanda.tls.enabled": {"true", "default"}, "database.pool_size": {"16", "default"},
		}},
		{"flag before the command over QIFLOW_ENV, file over defaults", []string{"QIFLOW_ENV=production", "QIFLOW_CONFIG=" + file, "REDPANDA_USERNAME=ingest"}, []string{"--profile", "staging", "profile"}, map[string][2]string{
			"profile": {"staging", "flag --profile"}, "database.pool_size": {"11", "file " + file + " (staging)"}, "redpanda.client_id": {"from-file", "file " + file + " (staging)"},
			"redpanda.request_timeout": {"15s", "default"},
		}},
		{"contract over file, QIFLOW_ over contract, flag after the command over QIFLOW_", []string{
			"QIFLOW_ENV=staging", "QIFLOW_CONFIG=" + file, "REDPANDA_BROKERS=contract:9092", "DATABASE_URL=postgres://u@contract/db", "REDPANDA_USERNAME=ingest",
			"QIFLOW_DATABASE_POOL_SIZE=12", "QIFLOW_REDPANDA_BROKERS=qiflow:9092",
		}, []string{"profile", "--profile-set", "redpanda.brokers=flag:9092"}, map[string][2]string{
			"redpanda.brokers":   {"flag:9092", "flag --profile-set"},
			"database.url":       {"postgres://u@contract/db", "env DATABASE_URL"},
			"database.pool_size": {"12", "env QIFLOW_DATABASE_POOL_SIZE"},
			"redpanda.client_id": {"from-file", "file " + file + " (staging)"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, out := profileTable(t, append(base, c.env...), c.args...)
			for key, want := range c.want {
				assert.Equal(t, want, rows[key], "%s in:\n%s", key, out)
			}
		})
	}
}

func TestProfileCommandRedactsSecretsAndChecksFiles(t *testing.T) {
	const saslSecret, dbSecret = "sasl-hunter2", "db-hunter2"
	secretFile := filepath.Join(t.TempDir(), "redpanda")
	require.NoError(t, os.WriteFile(secretFile, []byte(saslSecret+"\n"), 0o600))
	_, out := profileTable(t, []string{
		"QIFLOW_ENV=production", "REDPANDA_USERNAME=ingest",
		"QIFLOW_REDPANDA_SASL_PASSWORD_FILE=" + secretFile,
		"DATABASE_URL=postgres://qiflow:" + dbSecret + "@db:5432/qiflow",
		"QIFLOW_DATABASE_PASSWORD=" + dbSecret,
	}, "profile")
	assert.NotContains(t, out, saslSecret)
	assert.NotContains(t, out, dbSecret)
	assert.Contains(t, out, "postgres://qiflow:xxxxx@db:5432/qiflow")
	assert.Contains(t, out, secretFile, "the file's name is no secret")

	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	cmd := exec.Command(bin, "profile")
	cmd.Env = append(os.Environ(), "QIFLOW_REDPANDA_SASL_PASSWORD_FILE=/nonexistent/redpanda")
	cmd.Dir = t.TempDir()
	bad, err := cmd.CombinedOutput()
	assert.Error(t, err, "an unreadable password file fails the check:\n%s", bad)
	assert.Contains(t, string(bad), "profile development cannot be used: redpanda.sasl.password_file: open /nonexistent/redpanda")
}

// The command as registered, in process: it prints the installed profile.
func TestProfileCommandPrintsTheInstalledProfile(t *testing.T) {
	p, err := profile.Builtin(profile.Staging)
	require.NoError(t, err)
	p.Redpanda.SASL.User = "ingest"
	t.Cleanup(profile.Set(p))
	var out bytes.Buffer
	app := &cli.App{Name: "qiflow", Commands: []*cli.Command{profileCommand()}, Writer: &out, ErrWriter: io.Discard}
	require.NoError(t, app.Run([]string{"qiflow", "profile"}))
	assert.Contains(t, out.String(), "redpanda.client_id")
	assert.Contains(t, out.String(), "qiflow-staging")
}

// brokerlessPipeline consumes topic "in" with only the topic and group in
// the pipeline: the brokers come from the profile.
const brokerlessPipeline = `
http:
  enabled: false
input:
  redpanda:
    topics: [ in ]
    consumer_group: precedence
output:
  drop: {}
`

// The precedence, end to end: a pipeline without seed_brokers reaches the
// broker only when the winning layer names it and every layer below names
// a dead address.
func TestPipelineConnectsWhereTheWinningLayerSays(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "in"))
	live := broker.SeedList()
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	config := writeConfig(t, brokerlessPipeline)
	profileFile := func(broker string) string {
		path := filepath.Join(t.TempDir(), "qiflow.yaml")
		require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, "development:\n  redpanda: { brokers: [ %q ] }\n", broker), 0o600))
		return path
	}
	liveFile, deadFile := profileFile(live), profileFile(dead)
	base := []string{"QIFLOW_ENV=", "QIFLOW_CONFIG=", "REDPANDA_BROKERS=", "QIFLOW_REDPANDA_BROKERS="}
	cases := []struct {
		name string
		env  []string
		args []string
	}{
		{"profile file", []string{"QIFLOW_CONFIG=" + liveFile}, []string{"run", config}},
		{"contract variable over the file", []string{"QIFLOW_CONFIG=" + deadFile, "REDPANDA_BROKERS=" + live}, []string{"run", config}},
		{"QIFLOW_ variable over the contract variable", []string{"QIFLOW_CONFIG=" + deadFile, "REDPANDA_BROKERS=" + dead, "QIFLOW_REDPANDA_BROKERS=" + live}, []string{"run", config}},
		{"flag over QIFLOW_, Benthos flags alongside", []string{"REDPANDA_BROKERS=" + dead, "QIFLOW_REDPANDA_BROKERS=" + dead},
			[]string{"--log.level", "info", "-c", config, "--profile-set", "redpanda.brokers=" + live, "--set", "input.redpanda.commit_period=2s"}},
		{"--profile-file over QIFLOW_CONFIG", []string{"QIFLOW_CONFIG=" + deadFile}, []string{"--profile-file", liveFile, "run", config}},
		{"--profile over QIFLOW_ENV", []string{"QIFLOW_ENV=production", "QIFLOW_REDPANDA_BROKERS=" + live}, []string{"run", config, "--profile", "development"}},
	}
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proc := testenv.StartProcess(t, bin, append(base, c.env...), c.args...)
			proc.WaitForOutput(t, "from brokers "+live, 30*time.Second)
			require.NoError(t, proc.Signal(syscall.SIGTERM))
			code, err := proc.Wait(30 * time.Second)
			require.NoError(t, err)
			assert.Equal(t, 0, code, "%s", proc.Output())
		})
	}

	t.Run("an unknown QIFLOW_ENV stops qiflow before anything runs", func(t *testing.T) {
		cmd := exec.Command(bin, "run", config)
		cmd.Env = append(os.Environ(), "QIFLOW_ENV=prod")
		out, err := cmd.CombinedOutput()
		require.Error(t, err)
		assert.Equal(t, "qiflow: profile: unknown profile \"prod\" (env QIFLOW_ENV): want development, staging, production\n", string(out))
	})
}

// withPassword returns dsn with password set; the test cluster trusts
// local connections, so the password is carried but not checked.
func withPassword(t *testing.T, dsn, password string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

func get(t *testing.T, address string) string {
	t.Helper()
	resp, err := http.Get("http://" + address)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", address, body)
	return string(body)
}

func rowsIn(t *testing.T, dsn, table string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(t.Context())
	var n int
	if conn.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n) != nil {
		return -1
	}
	return n
}

// A SASL password (from a file or the environment) and a database password
// (in DATABASE_URL) never appear in what qiflow prints: `qiflow echo`, the
// log of a running pipeline, its /debug/config endpoints, or the log of a
// pipeline failing on them.
func TestSecretsNeverReachEchoLogsOrDebugEndpoints(t *testing.T) {
	const saslSecret, dbSecret, wrongSecret = "sasl-hunter2", "db-hunter2", "wrong-hunter2"
	broker := testenv.NewBroker(t, testenv.WithSASL("PLAIN", "ingest", saslSecret), testenv.WithTopics(2, "crypto-prices"))
	broker.ProduceN(t, "crypto-prices", 10, func(i int) *kgo.Record {
		return &kgo.Record{Value: fmt.Appendf(nil, `{"coinId":"c%d","symbol":"C","exchangeId":"binance","usdPrice":"1.5","lastUpdated":%d,"source":"t","attribution":"q"}`,
			i, time.Now().Add(-time.Hour).UnixMilli())}
	})
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	dsn := testenv.Database(t)
	out, err := exec.Command(bin, "schema", "apply", "-f", "../../pipelines/schema.yaml", "--dsn", dsn).CombinedOutput()
	require.NoError(t, err, "%s", out)
	secretFile := filepath.Join(t.TempDir(), "redpanda")
	require.NoError(t, os.WriteFile(secretFile, []byte(saslSecret+"\n"), 0o600))

	profileEnv := []string{
		"QIFLOW_ENV=", "QIFLOW_CONFIG=", "REDPANDA_BROKERS=",
		"QIFLOW_REDPANDA_BROKERS=" + broker.SeedList(),
		"REDPANDA_SASL_MECHANISM=PLAIN", "REDPANDA_USERNAME=ingest",
		"QIFLOW_REDPANDA_SASL_PASSWORD_FILE=" + secretFile,
		"DATABASE_URL=" + withPassword(t, dsn, dbSecret),
	}
	pipeline := func(address, input, output string) string {
		return fmt.Sprintf(`
http:
  address: %s
  debug_endpoints: true
input:
  redpanda:
    topics: [ crypto-prices ]
    consumer_group: %s
%s
output:
  timescale:
    table: crypto_prices
    format: price
%s
`, address, "g"+strings.ReplaceAll(address, ":", ""), input, output)
	}
	cases := []struct {
		name          string
		env           []string
		input, output string
	}{
		{"secrets from the profile", profileEnv, "", ""},
		{"secrets interpolated into the pipeline", append(profileEnv, "BROKER_PASSWORD="+saslSecret),
			`    seed_brokers: [ "${QIFLOW_REDPANDA_BROKERS}" ]
    sasl: { mechanism: PLAIN, user: ingest, password: "${BROKER_PASSWORD}" }`,
			`    dsn: "${DATABASE_URL}"`},
	}
	var printed strings.Builder
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			address := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			config := writeConfig(t, pipeline(address, c.input, c.output))

			cmd := exec.Command(bin, "echo", config)
			cmd.Env = append(os.Environ(), c.env...)
			echo, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", echo)
			printed.Write(echo)

			proc := testenv.StartProcess(t, bin, c.env, "run", "--log.level", "trace", config)
			require.Eventually(t, func() bool { return rowsIn(t, dsn, "crypto_prices") == 10 }, 60*time.Second, 50*time.Millisecond,
				"rows written with the profile's credentials:\n%s", proc.Output())
			for _, path := range []string{"/debug/config/json", "/debug/config/yaml"} {
				printed.WriteString(get(t, address+path))
			}
			require.NoError(t, proc.Signal(syscall.SIGTERM))
			code, err := proc.Wait(30 * time.Second)
			require.NoError(t, err)
			assert.Equal(t, 0, code, "%s", proc.Output())
			printed.WriteString(proc.Output())
			if i == 0 {
				execSQL(t, dsn, "TRUNCATE crypto_prices")
			}
		})
	}

	t.Run("rejected SASL password", func(t *testing.T) {
		config := writeConfig(t, pipeline(fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "", ""))
		proc := testenv.StartProcess(t, bin, append(profileEnv, "QIFLOW_REDPANDA_SASL_PASSWORD_FILE=", "QIFLOW_REDPANDA_SASL_PASSWORD="+wrongSecret), "run", config)
		code, err := proc.Wait(30 * time.Second)
		require.NoError(t, err)
		assert.Equal(t, exitHalted, code, "%s", proc.Output())
		assert.Contains(t, proc.Output(), "SASL_AUTHENTICATION_FAILED")
		printed.WriteString(proc.Output())
	})
	t.Run("unreachable database", func(t *testing.T) {
		config := writeConfig(t, pipeline(fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "", ""))
		unreachable := fmt.Sprintf("postgres://qiflow:%s@127.0.0.1:%d/qiflow?sslmode=disable", dbSecret, testenv.FreePort(t))
		proc := testenv.StartProcess(t, bin, append(profileEnv, "DATABASE_URL="+unreachable), "run", "--set", "shutdown_timeout=2s", config)
		proc.WaitForOutput(t, "connect to qiflow@127.0.0.1", 30*time.Second)
		require.NoError(t, proc.Signal(syscall.SIGTERM))
		_, err := proc.Wait(30 * time.Second)
		require.NoError(t, err)
		printed.WriteString(proc.Output())
	})

	assert.Contains(t, printed.String(), "!!!SECRET_SCRUBBED!!!", "echo and /debug/config show where a secret was")
	for _, secret := range []string{saslSecret, dbSecret, wrongSecret} {
		assert.NotContains(t, printed.String(), secret)
	}
}

// execSQL runs sql on the database at dsn.
func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer conn.Close(t.Context())
	_, err = conn.Exec(t.Context(), sql)
	require.NoError(t, err)
}

func TestProfileCommandPrintsJSON(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	run := func(env []string, args ...string) (profileJSON, []byte, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), append([]string{"QIFLOW_ENV=", "QIFLOW_CONFIG=", "QIFLOW_REDPANDA_SASL_PASSWORD_FILE="}, env...)...)
		cmd.Dir = t.TempDir()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var got profileJSON
		require.NoError(t, json.Unmarshal(stdout.Bytes(), &got), "stdout is one JSON object:\n%s%s", stdout.String(), stderr.String())
		return got, stderr.Bytes(), err
	}

	got, stderr, err := run(nil, "profile", "--json", "--profile-set", "database.pool_size=9")
	require.NoError(t, err, "%s", stderr)
	assert.Equal(t, "development", got.Profile)
	assert.Empty(t, got.Problem)
	entries := map[string]profileEntry{}
	for _, e := range got.Entries {
		entries[e.Key] = e
	}
	assert.Equal(t, profileEntry{"database.pool_size", "9", "flag --profile-set"}, entries["database.pool_size"])
	assert.Equal(t, profileEntry{"redpanda.brokers", "localhost:9092", "default"}, entries["redpanda.brokers"])
	assert.Equal(t, "", entries["redpanda.sasl.user"].Value, "an empty value is \"\", not the table's -")

	got, stderr, err = run([]string{"QIFLOW_REDPANDA_SASL_PASSWORD_FILE=/nonexistent/redpanda"}, "profile", "--json")
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, got.Problem, "redpanda.sasl.password_file: open /nonexistent/redpanda")
	assert.Contains(t, string(stderr), "profile development cannot be used")
}
