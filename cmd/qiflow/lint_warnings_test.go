package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// TestLintWarnsAboutATimescaleOutputThatRetriesBadMessagesForever lints a
// pipeline whose timescale output says neither on_error nor dead_letter:
// `qiflow lint` warns, with the line, and still exits 0. Saying on_error
// silences it, and a timescale input is not an output.
func TestLintWarnsAboutATimescaleOutputThatRetriesBadMessagesForever(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	dir := t.TempDir()
	undecided := filepath.Join(dir, "undecided.yaml")
	require.NoError(t, os.WriteFile(undecided, []byte(`input:
  generate: { mapping: 'root = {}', count: 1 }
output:
  timescale:
    table: crypto_prices
    format: price
`), 0o644))
	decided := filepath.Join(dir, "decided.yaml")
	require.NoError(t, os.WriteFile(decided, []byte(`input:
  generate: { mapping: 'root = {}', count: 1 }
output:
  timescale:
    table: crypto_prices
    format: price
    on_error: fail
`), 0o644))

	out, err := exec.Command(bin, "lint", undecided).CombinedOutput()
	require.NoError(t, err, "a warning does not fail the lint: %s", out)
	assert.Contains(t, string(out), undecided+":4: warning: this timescale output has neither on_error nor dead_letter")

	out, err = exec.Command(bin, "lint", decided).CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Empty(t, string(out))
}
