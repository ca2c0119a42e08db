package main

import (
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"
)

// warnPipelines prints warnings about the Benthos configs among args that
// lint clean but are likely mistakes. Warnings do not fail the lint.
func warnPipelines(args []string, stderr io.Writer) {
	for _, arg := range args {
		if len(arg) > 0 && arg[0] == '-' {
			continue
		}
		data, err := os.ReadFile(arg)
		if err != nil {
			continue // Benthos reports it
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil {
			continue
		}
		for _, line := range undecidedOutputs(&doc) {
			fmt.Fprintf(stderr, "%s:%d: warning: this timescale output has neither on_error nor dead_letter, so a message that can never be written is retried forever and holds up its partition; set on_error: dead_letter (with a dead_letter output), fail, drop or retry\n", arg, line)
		}
	}
}

// undecidedOutputs returns the lines of the timescale outputs under n that
// set neither on_error nor dead_letter. Inputs are skipped: the timescale
// input has the same name.
func undecidedOutputs(n *yaml.Node) []int {
	if n.Kind != yaml.MappingNode {
		var lines []int
		for _, c := range n.Content {
			lines = append(lines, undecidedOutputs(c)...)
		}
		return lines
	}
	var lines []int
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, value := n.Content[i], n.Content[i+1]
		switch {
		case key.Value == "input" || key.Value == "input_resources":
			continue
		case key.Value == "timescale" && value.Kind == yaml.MappingNode && !hasKey(value, "on_error") && !hasKey(value, "dead_letter"):
			lines = append(lines, key.Line)
		}
		lines = append(lines, undecidedOutputs(value)...)
	}
	return lines
}

func hasKey(mapping *yaml.Node, key string) bool {
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		if mapping.Content[i].Value == key {
			return true
		}
	}
	return false
}
