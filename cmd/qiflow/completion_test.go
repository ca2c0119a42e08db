package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

func completionScript(t *testing.T, shell string) string {
	t.Helper()
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, "completion", shell).Output()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "qiflow."+shell)
	require.NoError(t, os.WriteFile(path, out, 0o600))
	return path
}

func TestBashCompletionCompletesCommandsSubcommandsAndFlags(t *testing.T) {
	script := completionScript(t, "bash")
	out, err := exec.Command("bash", "-n", script).CombinedOutput()
	require.NoError(t, err, "bash -n: %s", out)

	complete := func(words ...string) []string {
		t.Helper()
		return runCompletion(t, "bash", script, words...)
	}
	top := complete("qiflow", "")
	for _, want := range []string{"run", "streams", "lint", "list", "schema", "topics", "profile", "dlq", "replay", "mcp", "dev", "completion"} {
		assert.Contains(t, top, want, "qiflow <TAB>")
	}
	assert.Equal(t, []string{"streams"}, complete("qiflow", "str"))
	assert.ElementsMatch(t, []string{"plan", "apply", "status"}, complete("qiflow", "--profile", "staging", "schema", ""))
	assert.Contains(t, complete("qiflow", "schema", "status", "--j"), "--json")
	assert.Contains(t, complete("qiflow", "profile", "--"), "--json")
	run := complete("qiflow", "run", "--")
	for _, want := range []string{"--watch", "--drain-timeout", "--http-address", "--set", "--profile"} {
		assert.Contains(t, run, want, "qiflow run --<TAB>")
	}
}

// TestTabCompletesInARealTerminal types in bash, zsh and fish, each in a
// tmux terminal with the script loaded the way completion's help says:
// Tab completes a command, a subcommand and a --watch flag of run.
func TestTabCompletesInARealTerminal(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	shells := map[string]struct{ start, load string }{
		"bash": {"bash --norc --noprofile -i", "source <(qiflow completion bash)"},
		"zsh":  {"zsh -f -i", "source <(qiflow completion zsh)"},
		"fish": {"fish --no-config -i", "qiflow completion fish | source"},
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			if _, err := exec.LookPath(shell); err != nil {
				t.Fatalf("%s is not installed (make deps-test installs it): %v", shell, err)
			}
			home := t.TempDir()
			env := []string{"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin", "HOME=" + home, "ZDOTDIR=" + home,
				"XDG_CONFIG_HOME=" + home, "XDG_DATA_HOME=" + home, "TERM=xterm-256color", "PS1=$ ", "PROMPT=$ "}
			term := testenv.StartTerminal(t, home, env, 120, 30, shells[shell].start)
			time.Sleep(500 * time.Millisecond) // the shell's first prompt
			term.SendKeys(shells[shell].load, "Enter")
			term.SendKeys("clear", "Enter")
			for _, tc := range []struct{ typed, shown string }{
				{"qiflow sch", "qiflow schema"},
				{"qiflow schema sta", "qiflow schema status"},
				{"qiflow run --drain-t", "qiflow run --drain-timeout"},
			} {
				term.SendKeys(tc.typed)
				term.SendKeys("Tab")
				term.WaitFor(tc.shown, 10*time.Second)
				term.SendKeys("C-u")
			}
		})
	}
}

func TestCompletionNeedsAShell(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	out, err := exec.Command(bin, "completion", "tcsh").CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "%s", out)
	assert.Equal(t, 1, exit.ExitCode())
	assert.Contains(t, string(out), "bash, zsh, fish")
}

// runCompletion runs the script's _qiflow in shell as the shell would for
// words, the last one being the word under the cursor, and returns its
// candidates.
func runCompletion(t *testing.T, shell, script string, words ...string) []string {
	t.Helper()
	var quoted []string
	for _, w := range words {
		quoted = append(quoted, "'"+w+"'")
	}
	cmd := exec.Command(shell, "-c", `source "$1"
COMP_WORDS=(`+strings.Join(quoted, " ")+`); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
_qiflow; printf '%s\n' "${COMPREPLY[@]}"`, shell, script)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return strings.Fields(string(out))
}
