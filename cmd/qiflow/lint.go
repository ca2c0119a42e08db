package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/schema"
	exchangerouter "github.com/qicore/qiflow/plugins/exchange_router"
)

// specLinters check the files next to the pipelines that are not Benthos
// configs, recognised by a top-level key: schema specs and topics files.
// `qiflow lint pipelines/*.yaml` then lints everything in the folder, each
// file by the parser that will read it.
var specLinters = []struct {
	key  string
	lint func(path string) error
}{
	{"tables", func(path string) error { _, err := schema.Load(path); return err }},
	{"continuous_aggregates", func(path string) error { _, err := schema.Load(path); return err }},
	{"topics", exchangerouter.LintTopicsFile},
}

// lintSpecs lints the spec files among the arguments of `qiflow lint` and
// returns the arguments left for Benthos's linter, whether it linted any
// file, and whether any spec failed.
func lintSpecs(args []string, stderr io.Writer) (benthosArgs []string, linted, failed bool) {
	for _, arg := range args {
		lint := specLinter(arg)
		if lint == nil {
			benthosArgs = append(benthosArgs, arg)
			continue
		}
		linted = true
		if err := lint(arg); err != nil {
			failed = true
			fmt.Fprintln(stderr, strings.TrimSpace(err.Error()))
		}
	}
	return benthosArgs, linted, failed
}

// specLinter returns the linter of a spec file, or nil for anything else:
// flags, Benthos configs, unreadable files (Benthos reports those).
func specLinter(arg string) func(string) error {
	if strings.HasPrefix(arg, "-") {
		return nil
	}
	data, err := os.ReadFile(arg)
	if err != nil {
		return nil
	}
	var top map[string]yaml.Node
	if yaml.Unmarshal(data, &top) != nil {
		return nil
	}
	if _, ok := top["input"]; ok {
		return nil
	}
	for _, l := range specLinters {
		if _, ok := top[l.key]; ok {
			return l.lint
		}
	}
	return nil
}
