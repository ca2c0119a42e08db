package schema_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/schema"
)

// failedJobSpec has one hypertable with a retention policy: one background
// job to make fail.
const failedJobSpec = `
version: 1
tables:
  - name: ticks
    columns:
      - { name: at, type: timestamptz, not_null: true }
      - { name: v,  type: integer }
    primary_key: [at]
    hypertable:
      time_column: at
      chunk_interval: 1 day
      retention: { drop_after: 30 days }
`

func TestStatusShowsAFailedJobsLastError(t *testing.T) {
	conn := connect(t, timescaleDatabase(t))
	ctx := context.Background()
	spec, err := schema.Parse("ticks.yaml", []byte(failedJobSpec))
	require.NoError(t, err)
	apply(t, conn, spec, schema.ApplyOptions{})

	// A retention job whose config no longer parses fails in the scheduler
	// on every TimescaleDB version, with a reason job_errors keeps. (On
	// PostgreSQL 15.20 every scheduler run also fails, with "cannot drop
	// portal".) The config is broken behind alter_job's check, as a
	// superuser can.
	var job int32
	require.NoError(t, conn.QueryRow(ctx, `SELECT job_id FROM timescaledb_information.jobs WHERE hypertable_name = 'ticks' AND proc_name = 'policy_retention'`).Scan(&job))
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SELECT alter_job($1, next_start => now())`, job)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE _timescaledb_config.bgw_job SET config = jsonb_set(config, '{drop_after}', '"thirty days"') WHERE id = $1`, job)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	var st *schema.StatusReport
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, err = schema.Status(ctx, conn, spec)
		require.NoError(t, err)
		if len(st.FailedJobs()) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	failed := st.FailedJobs()
	require.Len(t, failed, 1, "the scheduler ran the job: %+v", st.Hypertables)
	t.Logf("%s", st)
	assert.Equal(t, "ticks", failed[0].Owner)
	require.NotNil(t, failed[0].Policy.LastError)
	assert.NotEmpty(t, failed[0].Policy.LastError.Message)
	assert.NotEmpty(t, failed[0].Policy.LastError.SQLState)
	assert.Contains(t, st.String(), "1 job(s) failed on their last run:\n  job ")
	assert.Contains(t, st.String(), failed[0].Policy.LastError.Message)
}
