// Package mcp is the `qiflow mcp` command. (Being built.)
package mcp

import (
	"errors"

	_ "github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/urfave/cli/v2"
)

// CLICommand returns the `mcp` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	return &cli.Command{
		Name:  "mcp",
		Usage: "Serve the Model Context Protocol for operators and agents",
		Action: func(*cli.Context) error {
			return errors.New("mcp: not built yet")
		},
	}
}
