package devenv_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/devenv"
)

func TestAClusterServesADatabaseOnLoopbackAndCloseRemovesIt(t *testing.T) {
	c, err := devenv.StartCluster()
	if errors.Is(err, devenv.ErrPGNotFound) {
		t.Skip(err)
	}
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	dsn, err := c.CreateDatabase(ctx, "qiflow")
	require.NoError(t, err)
	again, err := c.CreateDatabase(ctx, "qiflow")
	require.NoError(t, err, "creating an existing database is a no-op")
	assert.Equal(t, dsn, again)
	assert.Contains(t, dsn, "@127.0.0.1:")

	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	var db, listen, dataDir string
	require.NoError(t, conn.QueryRow(ctx, "SELECT current_database(), current_setting('listen_addresses'), current_setting('data_directory')").Scan(&db, &listen, &dataDir))
	require.NoError(t, conn.Close(ctx))
	assert.Equal(t, "qiflow", db)
	assert.Equal(t, "127.0.0.1", listen)

	assert.Positive(t, c.PID(), "a running cluster has a postmaster")
	require.NoError(t, c.Stop())
	assert.False(t, c.Running())
	assert.Zero(t, c.PID(), "a stopped cluster has no postmaster")
	require.NoError(t, c.Start())
	assert.True(t, c.Running())
	assert.Positive(t, c.PID())

	require.NoError(t, c.Close())
	closed = true
	assert.False(t, c.Running())
	_, err = os.Stat(dataDir)
	assert.True(t, os.IsNotExist(err), "Close removes the cluster's files: stat %s: %v", dataDir, err)
}
