package main

import (
	"fmt"
	"strings"
)

// watchFlag is one flag of `run --watch` and `streams --watch`. The table
// below is the one source of both their usage text (watchUsage) and the
// section that `qiflow run --help` and `qiflow streams --help` end with
// (watchHelp).
type watchFlag struct {
	name string // "--drain-timeout", or "-c, --config"
	arg  string // "DUR", or "" for a switch
	// usage: the first line is the flag's summary, the rest are details
	// shown under `--watch --help` only.
	usage []string
	// benthos: Benthos's own command defines the flag already.
	benthos bool
	// any: the flag works without --watch too.
	any bool
}

var watchFlags = []watchFlag{
	{name: "--watch", any: true, usage: []string{"run under qiflow's reload supervisor: swap the pipelines when their config changes (see qiflow run --watch --help)"}},
	{name: "-c, --config", arg: "FILE", usage: []string{"the config file (run)"}, benthos: true},
	{name: "--set", arg: "PATH=VALUE", usage: []string{"override a config field, e.g. --set output.timescale.pool_size=8"}, benthos: true},
	{name: "--log.level", arg: "LEVEL", usage: []string{"off, error, warn, info, debug, trace (default: the config's logger.level, else INFO)"}, benthos: true},
	{name: "--log.format", arg: "FORMAT", usage: []string{"logfmt or json (default: the config's logger.format, else logfmt)",
		"streams take the logger section of their first config file"}},
	{name: "--http-address", arg: "ADDR", usage: []string{`the HTTP server (default: $QIFLOW_HTTP_ADDRESS, else the config's http.address, else 127.0.0.1:4195; "" disables)`,
		"a taken address is a start error"}, any: true},
	{name: "--reload-start-timeout", arg: "DUR", usage: []string{"how long a reloaded stream may take to connect (default 15s)"}},
	{name: "--drain-timeout", arg: "DUR", usage: []string{"how long a stream may take to drain (default 30s)"}},
	{name: "--watch-debounce", arg: "DUR", usage: []string{"quiet time after a change before reloading (default 200ms)"}},
	{name: "--watch-poll", arg: "DUR", usage: []string{"also re-read the configs this often, for file systems without change events (default 0: off)"}},
	{name: "--mcp-token-file", arg: "FILE", usage: []string{"serve the MCP server (docs/mcp.md) at /mcp to requests with this bearer token",
		"(default: $QIFLOW_MCP_TOKEN; neither: no /mcp)"}},
	{name: "--mcp-allow-writes", usage: []string{"enable the MCP tools that change things (schema_apply, reload)"}},
}

// watchUsage documents `run --watch` and `streams --watch`.
var watchUsage = `qiflow run --watch [flags] FILE
qiflow streams --watch [flags] DIR|FILE...

Runs the pipelines and swaps them when their config changes: a new config is
linted and built before the running stream is touched; the running stream is
drained (in-flight messages written, offsets committed) before the new one
starts; a new stream that does not connect within --reload-start-timeout is
replaced by the old config again. Edits are picked up from the file system
(saves by rename included) and from POST /reload. Every reload is reported in
the log, in qiflow_reloads_total{result} and at GET /reloads.

Flags:
` + watchFlagsUsage()

func watchFlagsUsage() string {
	var b strings.Builder
	for _, f := range watchFlags[1:] {
		left := strings.TrimSpace(f.name + " " + f.arg)
		for i, line := range f.usage {
			line = strings.TrimPrefix(line, "")
			if i > 0 {
				left = ""
			}
			fmt.Fprintf(&b, "  %-30s %s\n", left, line)
		}
	}
	return b.String()
}

// watchHelp is the section `qiflow run --help` and `qiflow streams --help`
// end with: the flags that only qiflow understands, which Benthos's own
// help cannot list (main intercepts them before Benthos parses anything).
func watchHelp() string {
	var b strings.Builder
	b.WriteString("\nQIFLOW OPTIONS (see qiflow run --watch --help):\n")
	for _, f := range watchFlags {
		if f.benthos {
			continue
		}
		usage := f.usage[0]
		if !f.any {
			usage = "with --watch: " + usage
		}
		fmt.Fprintf(&b, "   %-28s %s\n", strings.TrimSpace(f.name+" "+f.arg), usage)
	}
	return b.String()
}

// helpArgs reports whether args ask for the help of `run` or `streams`
// (without --watch, whose help is watchUsage).
func helpArgs(args []string) bool {
	if len(args) == 3 && args[1] == "help" {
		return args[2] == "run" || args[2] == "streams"
	}
	if len(args) < 3 || (args[1] != "run" && args[1] != "streams") {
		return false
	}
	for _, a := range args[2:] {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "--help" || a == "-help" {
			return true
		}
	}
	return false
}

// watchOnlyFlag returns the --watch-only flag that arg names, or "".
func watchOnlyFlag(arg string) string {
	name, _, _ := strings.Cut(arg, "=")
	for _, f := range watchFlags {
		if !f.benthos && !f.any && f.name == name {
			return name
		}
	}
	return ""
}
