package devenv

import (
	"fmt"
	"syscall"
)

// Crash stops the cluster as `pg_ctl stop -m immediate` does: SIGQUIT to
// the postmaster, which cuts every connection at once and skips the
// shutdown checkpoint, so the next Start recovers from the WAL as after a
// power loss. Tests use it for a database that dies under load.
func (c *Cluster) Crash() error {
	if err := c.stop(syscall.SIGQUIT); err != nil {
		return fmt.Errorf("crash PostgreSQL: %w", err)
	}
	return nil
}
