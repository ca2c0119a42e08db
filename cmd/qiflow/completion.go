package main

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionShells are the shells `qiflow completion` writes a script for.
var completionShells = []string{"bash", "zsh", "fish"}

// completionCommand is `qiflow completion bash|zsh|fish`: a static
// completion script generated from the command tree as registered, so it
// names Benthos's commands and qiflow's alike, and every subcommand and
// flag.
func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "Print a shell completion script for bash, zsh or fish",
		ArgsUsage: "bash|zsh|fish",
		Description: `
Prints a script that completes qiflow's commands, subcommands and flags.
Files complete as usual where a command takes them.

  source <(qiflow completion bash)          # bash, this shell; add it to ~/.bashrc to keep it
  source <(qiflow completion zsh)           # zsh, likewise in ~/.zshrc
  qiflow completion fish > ~/.config/fish/completions/qiflow.fish

See docs/cli.md.`[1:],
		Action: func(c *cli.Context) error {
			shell := c.Args().First()
			tree := commandTree(c.App)
			switch shell {
			case "bash":
				return writeBashCompletion(c.App.Writer, tree)
			case "zsh":
				return writeZshCompletion(c.App.Writer, tree)
			case "fish":
				return writeFishCompletion(c.App.Writer, tree)
			}
			return cli.Exit(fmt.Sprintf("qiflow completion: name a shell: %s", strings.Join(completionShells, ", ")), 1)
		},
	}
}

// completionNode is one command of the tree: its path from the root ("" for
// qiflow itself, "schema plan" for a subcommand), its subcommands and flags.
type completionNode struct {
	path  string
	usage string
	subs  []string
	flags []string // "--json", "-c"
}

// globalFlags are qiflow's own flags, which main takes out before Benthos
// sees them: the CLI tree does not hold them.
var globalFlags = []string{flagProfile, flagProfileFile, flagProfileSet}

// commandTree flattens the app's visible commands, depth first.
func commandTree(app *cli.App) []completionNode {
	root := completionNode{flags: append(flagNames(app.VisibleFlags()), globalFlags...)}
	nodes := []completionNode{root}
	var walk func(idx int, cmds []*cli.Command)
	walk = func(idx int, cmds []*cli.Command) {
		for _, cmd := range cmds {
			// urfave/cli gives every command with subcommands a help
			// subcommand; only the root's is worth completing.
			if cmd.Hidden || (idx > 0 && cmd.Name == "help") {
				continue
			}
			path := strings.TrimSpace(nodes[idx].path + " " + cmd.Name)
			nodes[idx].subs = append(nodes[idx].subs, cmd.Names()...)
			flags := flagNames(cmd.VisibleFlags())
			if path == "run" || path == "streams" {
				flags = append(flags, watchFlagNames()...)
			}
			nodes = append(nodes, completionNode{path: path, usage: cmd.Usage, flags: append(flags, globalFlags...)})
			walk(len(nodes)-1, cmd.Subcommands)
		}
	}
	walk(0, app.Commands)
	return nodes
}

// watchFlagNames are the flags of watchFlags that Benthos's run and
// streams do not define: main intercepts them.
func watchFlagNames() []string {
	var names []string
	for _, f := range watchFlags {
		if !f.benthos {
			names = append(names, f.name)
		}
	}
	return names
}

func flagNames(flags []cli.Flag) []string {
	var names []string
	for _, f := range flags {
		for _, n := range f.Names() {
			if len(n) == 1 {
				names = append(names, "-"+n)
			} else {
				names = append(names, "--"+n)
			}
		}
	}
	sort.Strings(names)
	return slices.Compact(names)
}

// writeBashCompletion writes a bash script: _qiflow walks the words before
// the cursor down the tree, then offers that command's subcommands, or its
// flags for a word that starts with "-", or files.
func writeBashCompletion(w io.Writer, tree []completionNode) error {
	var b strings.Builder
	b.WriteString(`# bash completion for qiflow: source <(qiflow completion bash)
_qiflow_subcommands() {
  case "$1" in
`)
	for _, n := range tree {
		if len(n.subs) > 0 {
			fmt.Fprintf(&b, "    %q) echo %q ;;\n", n.path, strings.Join(n.subs, " "))
		}
	}
	b.WriteString(`  esac
}
_qiflow_flags() {
  case "$1" in
`)
	for _, n := range tree {
		fmt.Fprintf(&b, "    %q) echo %q ;;\n", n.path, strings.Join(n.flags, " "))
	}
	b.WriteString(`  esac
}
_qiflow() {
  # zsh's bashcompinit counts COMP_CWORD from 0 but its arrays from 1.
  [[ -n "${ZSH_VERSION:-}" ]] && setopt localoptions ksharrays
  local cur="${COMP_WORDS[COMP_CWORD]}" path="" word subs i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    subs=" $(_qiflow_subcommands "$path") "
    if [[ "$word" != -* && "$subs" == *" $word "* ]]; then
      path="${path:+$path }$word"
    fi
  done
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_qiflow_flags "$path")" -- "$cur"))
    return
  fi
  subs="$(_qiflow_subcommands "$path")"
  if [[ -n "$subs" ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  fi
}
complete -o default -F _qiflow qiflow
`)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeZshCompletion writes the bash script behind zsh's bashcompinit,
// which runs bash completion functions unchanged.
func writeZshCompletion(w io.Writer, tree []completionNode) error {
	if _, err := io.WriteString(w, "# zsh completion for qiflow: source <(qiflow completion zsh)\n(( $+functions[compdef] )) || { autoload -U +X compinit && compinit }\nautoload -U +X bashcompinit && bashcompinit\n"); err != nil {
		return err
	}
	return writeBashCompletion(w, tree)
}

// writeFishCompletion writes one `complete` line per subcommand and flag,
// each under the condition that its parent command's words were seen.
func writeFishCompletion(w io.Writer, tree []completionNode) error {
	var b strings.Builder
	b.WriteString("# fish completion for qiflow: qiflow completion fish > ~/.config/fish/completions/qiflow.fish\n")
	usage := map[string]string{}
	for _, n := range tree {
		usage[n.path] = n.usage
	}
	for _, n := range tree {
		cond := "__fish_use_subcommand"
		if n.path != "" {
			cond = "__fish_seen_subcommand_from " + strings.Join(strings.Fields(n.path), " ")
			if words := strings.Fields(n.path); len(words) > 1 {
				cond = "__fish_seen_subcommand_from " + words[len(words)-1]
			}
		}
		for _, sub := range n.subs {
			fmt.Fprintf(&b, "complete -c qiflow -f -n %s -a %s -d %s\n", fishQuote(cond), fishQuote(sub), fishQuote(usage[strings.TrimSpace(n.path+" "+sub)]))
		}
		for _, f := range n.flags {
			if long, ok := strings.CutPrefix(f, "--"); ok {
				fmt.Fprintf(&b, "complete -c qiflow -n %s -l %s\n", fishQuote(cond), fishQuote(long))
			} else {
				fmt.Fprintf(&b, "complete -c qiflow -n %s -s %s\n", fishQuote(cond), fishQuote(strings.TrimPrefix(f, "-")))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// fishQuote quotes s for fish: in single quotes only \\ and \' are special.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
