package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// watchFlag is one flag of `run --watch` and `streams --watch`. The table
// below is the one source of both their usage text (watchUsage) and the
// flags `qiflow run --help` and `qiflow streams --help` list.
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

// watchCLIFlags are the flags of watchFlags that Benthos's run and streams
// commands do not define, for their --help. main intercepts --watch before
// Benthos parses anything, and turns --http-address into --set; the rest
// mean nothing without --watch, which watchOnly reports.
func watchCLIFlags() []cli.Flag {
	var flags []cli.Flag
	for _, f := range watchFlags {
		if f.benthos {
			continue
		}
		name := strings.TrimPrefix(f.name, "--")
		usage := f.usage[0]
		if f.arg != "" {
			usage = f.arg + ": " + usage
		}
		if !f.any {
			usage = "(with --watch) " + usage
		}
		if f.arg == "" {
			flags = append(flags, &cli.BoolFlag{Name: name, Usage: usage})
			continue
		}
		flags = append(flags, &cli.StringFlag{Name: name, Usage: usage})
	}
	return flags
}

// watchOnly fails a command that Benthos runs (without --watch) and that
// was given a flag only --watch understands.
func watchOnly(c *cli.Context) error {
	for _, f := range watchFlags {
		name := strings.TrimPrefix(f.name, "--")
		if f.benthos || f.any || !c.IsSet(name) {
			continue
		}
		return fmt.Errorf("%s needs --watch (qiflow %s --watch --help lists its flags)", f.name, c.Command.Name)
	}
	return nil
}
