// Package dlq is the `qiflow dlq` command. (Being built.)
package dlq

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// CLICommand returns the `dlq` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	return &cli.Command{
		Name:  "dlq",
		Usage: "List, show and redrive dead letters",
		Action: func(*cli.Context) error {
			return errors.New("dlq: not built yet")
		},
	}
}
