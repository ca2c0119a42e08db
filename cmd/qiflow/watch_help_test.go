package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

func TestRunAndStreamsHelpListTheWatchFlags(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	for _, args := range [][]string{{"run", "--help"}, {"streams", "-h"}, {"help", "run"}} {
		command := strings.Join(args, " ")
		out, err := exec.Command(bin, args...).CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "--chilled", "Benthos's own help comes first")
		for _, f := range watchFlags {
			if f.benthos {
				continue
			}
			assert.Contains(t, string(out), "   "+f.name+" ", "qiflow %s lists %s", command, f.name)
		}
	}
	out, err := exec.Command(bin, "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.NotContains(t, string(out), "--drain-timeout", "the watch flags are no global options")
}

func TestWatchUsageListsEveryWatchFlag(t *testing.T) {
	for _, f := range watchFlags[1:] {
		name, _, _ := strings.Cut(f.name, ",")
		assert.Contains(t, watchUsage, "  "+name, f.name)
	}
}

func TestAWatchFlagWithoutWatchIsAnError(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	file := writeConfig(t, "input:\n  generate: {mapping: 'root = 1', count: 1}\noutput:\n  drop: {}\n")
	out, err := exec.Command(bin, "run", "--drain-timeout", "1s", file).CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), "--drain-timeout needs --watch")
}
