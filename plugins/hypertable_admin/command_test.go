package hypertableadmin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/testenv"
	hypertableadmin "github.com/qicore/qiflow/plugins/hypertable_admin"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const shippedSpec = "../../pipelines/schema.yaml"

// run runs `qiflow <args>` in-process and returns its output and exit code.
func run(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{
		Name:           "qiflow",
		Writer:         &out,
		ErrWriter:      &out,
		Commands:       []*cli.Command{hypertableadmin.CLICommand()},
		ExitErrHandler: func(*cli.Context, error) {}, // keep the test process alive
	}
	err := app.RunContext(context.Background(), append([]string{"qiflow"}, args...))
	code := 0
	if err != nil {
		code = 1
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		out.WriteString(err.Error())
	}
	return out.String(), code
}

func TestPlanApplyStatus(t *testing.T) {
	dsn := testenv.Database(t)

	out, code := run(t, "schema", "plan", "-f", shippedSpec, "--dsn", dsn, "--detailed-exitcode")
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, `CREATE TABLE "public"."crypto_prices"`)
	assert.Contains(t, out, `PRIMARY KEY ("last_updated", "coin_id", "exchange_id")`)

	out, code = run(t, "schema", "plan", "-f", shippedSpec, "--dsn", dsn, "--json")
	require.Equal(t, 0, code, out)
	var plan struct {
		Steps []struct{ Description, SQL string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &plan))
	var descriptions []string
	for _, s := range plan.Steps {
		descriptions = append(descriptions, s.Description)
	}
	assert.Contains(t, descriptions, "create table crypto_prices")

	t.Setenv("DATABASE_URL", dsn) // the default for --dsn
	out, code = run(t, "schema", "apply", "-f", shippedSpec)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "step 1/")
	assert.Contains(t, out, "done in ")
	assert.Contains(t, out, "apply complete")

	out, code = run(t, "schema", "plan", "-f", shippedSpec, "--detailed-exitcode")
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "No changes")

	out, code = run(t, "schema", "apply", "-f", shippedSpec)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "apply complete: 0 change(s)")

	out, code = run(t, "schema", "status", "-f", shippedSpec)
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "crypto_prices")

	out, code = run(t, "schema", "status", "-f", shippedSpec, "--json")
	require.Equal(t, 0, code, out)
	var status struct{ Hypertables []struct{ Table string } }
	require.NoError(t, json.Unmarshal([]byte(out), &status))
	require.Len(t, status.Hypertables, 3)
	assert.Equal(t, "crypto_market_analytics", status.Hypertables[2].Table)
}

func TestApplyRefusesDestructiveChangesWithoutTheFlag(t *testing.T) {
	dsn := testenv.Database(t)
	_, code := run(t, "schema", "apply", "-f", shippedSpec, "--dsn", dsn)
	require.Equal(t, 0, code)

	data, err := os.ReadFile(shippedSpec)
	require.NoError(t, err)
	edited := filepath.Join(t.TempDir(), "schema.yaml")
	require.NoError(t, os.WriteFile(edited, []byte(strings.Replace(string(data), "      - { name: change_7d,    type: \"numeric(10,4)\" }\n", "", 1)), 0o644))

	out, code := run(t, "schema", "plan", "-f", edited, "--dsn", dsn)
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "drop column change_7d of crypto_prices (not in the spec) [DESTRUCTIVE]")

	out, code = run(t, "schema", "apply", "-f", edited, "--dsn", dsn)
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "without --allow-destructive")

	out, code = run(t, "schema", "apply", "-f", edited, "--dsn", dsn, "--allow-destructive")
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "drop column change_7d")
}

func TestABadSpecNamesFileLineAndReason(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "schema.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("version: 1\ntables:\n  - name: t\n    colums: []\n"), 0o644))
	out, code := run(t, "schema", "plan", "-f", bad, "--dsn", "postgres://nobody@127.0.0.1:1/none")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, bad+`:4: table: unknown key "colums"`)
}
