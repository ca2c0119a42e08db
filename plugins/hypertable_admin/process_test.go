package hypertableadmin_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// writeSpec writes a spec file and returns its path.
func writeSpec(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(body), 0o644))
	return path
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

const twoTables = `version: 1
tables:
  - name: first
    columns:
      - { name: id, type: bigint, not_null: true }
    primary_key: [id]
  - name: second
    columns:
      - { name: id, type: bigint, not_null: true }
    primary_key: [id]
`

// TestApplyPrintsEachStepAsItStarts shows a step's line while the step is
// still running: the second step waits on a lock the test holds, and the
// first step's lines and the second's start are already on the screen.
func TestApplyPrintsEachStepAsItStarts(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	dsn := testenv.Database(t)
	_, code := run(t, "schema", "apply", "-f", writeSpec(t, "schema.yaml", twoTables), "--dsn", dsn)
	require.Equal(t, 0, code)
	// The next spec adds an index to the first table and a column to the
	// second.
	next := writeSpec(t, "schema.yaml", strings.Replace(twoTables,
		"    primary_key: [id]\n  - name: second\n    columns:\n      - { name: id, type: bigint, not_null: true }\n",
		"    primary_key: [id]\n    indexes:\n      - { name: first_id_desc, columns: [id DESC] }\n  - name: second\n    columns:\n      - { name: id, type: bigint, not_null: true }\n      - { name: note, type: text }\n", 1))

	locker := connect(t, dsn)
	ctx := context.Background()
	tx, err := locker.Begin(ctx)
	require.NoError(t, err)
	// ACCESS SHARE lets the plan read the table (it checks for rows) and
	// blocks the ALTER TABLE of the second step.
	_, err = tx.Exec(ctx, `LOCK TABLE "second" IN ACCESS SHARE MODE`)
	require.NoError(t, err)

	p := testenv.StartProcess(t, bin, []string{"DATABASE_URL=" + dsn}, "schema", "apply", "-f", next)
	p.WaitForOutput(t, "step 1/2: create index first_id_desc on first ...\n", time.Minute)
	p.WaitForOutput(t, "step 1/2 done in ", time.Minute)
	p.WaitForOutput(t, "step 2/2: add column note to second ...\n", time.Minute)
	time.Sleep(time.Second) // the step is blocked on the lock
	assert.NotContains(t, p.Output(), "step 2/2 done", "the second step waits for the lock")
	assert.NotContains(t, p.Output(), "committed")
	require.NoError(t, tx.Rollback(ctx))

	code, err = p.Wait(time.Minute)
	require.NoError(t, err)
	require.Equal(t, 0, code, p.Output())
	out := p.Output()
	assert.Regexp(t, `step 2/2 done in [1-9][0-9.]*s\n`, out, "the blocked step's time is at least the second it waited")
	assert.Contains(t, out, "committed 2 step(s) in one transaction in ")
	assert.Contains(t, out, "apply complete: 2 change(s)")
}

const failingJobSpec = `version: 1
tables:
  - name: ticks
    columns:
      - { name: at, type: timestamptz, not_null: true }
    primary_key: [at]
    hypertable:
      time_column: at
      chunk_interval: 1 day
      retention: { drop_after: 30 days }
`

// TestStatusCheckExitsTwoOnAFailedJobAndShowsItsError makes a retention
// job fail in TimescaleDB's scheduler and reads status as a user does.
func TestStatusCheckExitsTwoOnAFailedJobAndShowsItsError(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	testenv.RequireTimescale(t, testenv.Database(t))
	dsn := testenv.Database(t)
	env := []string{"DATABASE_URL=" + dsn}
	noPolicy := writeSpec(t, "ticks.yaml", strings.Replace(failingJobSpec, "      retention: { drop_after: 30 days }\n", "", 1))
	_, code := run(t, "schema", "apply", "-f", noPolicy, "--dsn", dsn)
	require.Equal(t, 0, code)
	p := testenv.StartProcess(t, bin, env, "schema", "status", "-f", noPolicy, "--check")
	code, err := p.Wait(time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "no job, none failed: %s", p.Output())

	spec := writeSpec(t, "ticks.yaml", failingJobSpec)
	_, code = run(t, "schema", "apply", "-f", spec, "--dsn", dsn)
	require.Equal(t, 0, code)
	// A config that no longer parses fails on every TimescaleDB version;
	// alter_job checks configs, so it is broken behind it, as a superuser
	// can, in the transaction that schedules the run. (On PostgreSQL 15.20
	// the scheduler's runs fail anyway, with "cannot drop portal".)
	conn := connect(t, dsn)
	ctx := context.Background()
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT alter_job(job_id, next_start => now()) FROM timescaledb_information.jobs WHERE hypertable_name = 'ticks'`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE _timescaledb_config.bgw_job SET config = jsonb_set(config, '{drop_after}', '"thirty days"') WHERE hypertable_id IS NOT NULL`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	require.Eventually(t, func() bool {
		var failed bool
		require.NoError(t, conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM timescaledb_information.job_stats WHERE hypertable_name = 'ticks' AND last_run_status = 'Failed')`).Scan(&failed))
		return failed
	}, 90*time.Second, 300*time.Millisecond, "the scheduler runs the job")
	var wantCode, wantMessage string
	require.NoError(t, conn.QueryRow(ctx, `SELECT sqlerrcode, err_message FROM timescaledb_information.job_errors ORDER BY finish_time DESC LIMIT 1`).Scan(&wantCode, &wantMessage))

	p = testenv.StartProcess(t, bin, env, "schema", "status", "-f", spec)
	code, err = p.Wait(time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "without --check a failed job is shown, not an error")
	assert.Regexp(t, `1 job\(s\) failed on their last run:\n  job \d+ \(retention of ticks\) failed \d+ time\(s\); last error at \S+: `, p.Output())
	assert.Contains(t, p.Output(), wantMessage+" (SQLSTATE "+wantCode+")\n")

	p = testenv.StartProcess(t, bin, env, "schema", "status", "-f", spec, "--check")
	code, err = p.Wait(time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 2, code, p.Output())
	assert.Contains(t, p.Output(), "1 background job(s) failed on their last run")

	p = testenv.StartProcess(t, bin, env, "schema", "status", "-f", spec, "--check", "--json")
	code, err = p.Wait(time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 2, code)
	out := p.Output()
	var st struct {
		Hypertables []struct {
			Policies []struct {
				LastState string `json:"last_run_status"`
				LastError *struct {
					SQLState string `json:"sqlstate"`
					Message  string `json:"message"`
				} `json:"last_error"`
			}
		}
	}
	require.NoError(t, json.NewDecoder(strings.NewReader(out)).Decode(&st), out)
	require.Len(t, st.Hypertables, 1)
	require.Len(t, st.Hypertables[0].Policies, 1)
	pol := st.Hypertables[0].Policies[0]
	assert.Equal(t, "Failed", pol.LastState)
	require.NotNil(t, pol.LastError, out)
	assert.Equal(t, wantCode, pol.LastError.SQLState)
	assert.Equal(t, wantMessage, pol.LastError.Message)
}
