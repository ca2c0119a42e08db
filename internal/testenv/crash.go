package testenv

import "testing"

// Crash stops the cluster at once, as `pg_ctl stop -m immediate` does (see
// devenv.Cluster.Crash); Start brings it back through crash recovery.
func (c *Cluster) Crash(t testing.TB) {
	t.Helper()
	if err := c.pg.Crash(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
