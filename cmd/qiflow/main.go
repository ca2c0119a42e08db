// Command qiflow is the qiflow distribution of Benthos: every core Benthos
// command and component, plus qiflow's plugins for moving crypto market data
// from Redpanda into TimescaleDB.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/supervisor"
	"github.com/qicore/qiflow/plugins/devcmd"
	"github.com/qicore/qiflow/plugins/dlq"
	exchangerouter "github.com/qicore/qiflow/plugins/exchange_router"
	_ "github.com/qicore/qiflow/plugins/external"
	hypertableadmin "github.com/qicore/qiflow/plugins/hypertable_admin"
	_ "github.com/qicore/qiflow/plugins/market_data"
	"github.com/qicore/qiflow/plugins/mcp"
	_ "github.com/qicore/qiflow/plugins/prometheus"
	_ "github.com/qicore/qiflow/plugins/redpanda"
	"github.com/qicore/qiflow/plugins/replay"
	_ "github.com/qicore/qiflow/plugins/schema_registry"
	_ "github.com/qicore/qiflow/plugins/timescale_input"
	_ "github.com/qicore/qiflow/plugins/timescale_output"
)

// Build information, injected with -ldflags "-X main.version=... -X main.commit=... -X main.date=...".
var (
	version = "dev"
	commit  = "unknown"
	date    = "unknown"
)

// exitHalted is the exit code when a pipeline stopped itself on a fatal error
// (bad credentials, for instance) rather than finishing its input.
const exitHalted = 3

func main() {
	args, err := applyProfile(os.Args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "qiflow: profile: %v\n", err)
		os.Exit(1)
	}
	if watchArgs(args) {
		os.Exit(runWatch(args, os.Stdout, os.Stderr))
	}
	rest, err := plainHTTP(args)
	var listen *supervisor.ListenError
	switch {
	case errors.As(err, &listen):
		reportListenError(os.Stderr, args[1], listen)
		os.Exit(1)
	case err != nil:
		fmt.Fprintf(os.Stderr, "qiflow %s: %v\n", args[1], err)
		os.Exit(1)
	}
	args = rest
	specFailed := false
	if len(args) > 1 && args[1] == "lint" {
		rest, linted, failed := lintSpecs(args[2:], os.Stderr)
		specFailed = failed
		warnPipelines(rest, os.Stderr)
		if linted && !hasFile(rest) {
			os.Exit(boolToCode(failed))
		}
		args = append(args[:2:2], rest...)
	}
	code, err := service.RunCLIToCode(context.Background(),
		service.CLIOptSetArgs(args...),
		service.CLIOptSetBinaryName("qiflow"),
		service.CLIOptSetProductName("qiflow"),
		service.CLIOptSetVersion(versionString(), date),
		service.CLIOptSetDocumentationURL("https://github.com/qicore/qiflow"),
		service.CLIOptAddCommand(hypertableadmin.CLICommand()),
		service.CLIOptAddCommand(exchangerouter.CLICommand()),
		service.CLIOptAddCommand(devcmd.CLICommand()),
		service.CLIOptAddCommand(profileCommand()),
		service.CLIOptAddCommand(completionCommand()),
		service.CLIOptAddCommand(replay.CLICommand()),
		service.CLIOptAddCommand(dlq.CLICommand()),
		service.CLIOptAddCommand(mcp.CLICommand()),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if code == 0 && helpArgs(args) {
		fmt.Print(watchHelp())
	}
	if specFailed && code == 0 {
		code = 1
	}
	if halted := result.Halted(); halted != nil && code == 0 {
		fmt.Fprintf(os.Stderr, "qiflow stopped: %v\n", halted)
		code = exitHalted
	}
	os.Exit(code)
}

// hasFile reports whether args name anything but flags.
func hasFile(args []string) bool {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return true
		}
	}
	return false
}

func boolToCode(failed bool) int {
	if failed {
		return 1
	}
	return 0
}
