// Package replay is the `qiflow replay` command. (Being built.)
package replay

import (
	"errors"

	"github.com/urfave/cli/v2"
)

// CLICommand returns the `replay` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "Replay a time range of a table into a topic",
		Action: func(*cli.Context) error {
			return errors.New("replay: not built yet")
		},
	}
}
