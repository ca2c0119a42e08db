// Package mcp is `qiflow mcp`: a Model Context Protocol server, on the
// official Go SDK, that answers an operator's or an agent's questions about
// a running qiflow (streams, lag, dead letters, reloads, schema, topics,
// profile, rows in a time range), read-only unless --allow-writes. It
// speaks stdio; `qiflow run --watch --mcp-token-file FILE` serves the same
// server over streamable HTTP at /mcp (see docs/mcp.md).
package mcp

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/profile"
)

// Flag names of `qiflow mcp`.
const (
	flagQiflowURL   = "qiflow-url"
	flagAllowWrites = "allow-writes"
	flagSchemaFile  = "schema-file"
	flagTopicsFile  = "topics-file"
)

// Defaults: the shipped files, and the HTTP address qiflow serves by
// default (Benthos's 0.0.0.0:4195, reached on the loopback).
const (
	DefaultSchemaFile  = "pipelines/schema.yaml"
	DefaultTopicsFile  = "pipelines/topics.yaml"
	defaultHTTPAddress = "127.0.0.1:4195"
	// httpAddressEnv is the variable `qiflow run --watch` takes its HTTP
	// address from.
	httpAddressEnv = "QIFLOW_HTTP_ADDRESS"
)

// CLICommand returns the `mcp` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	return &cli.Command{
		Name:  "mcp",
		Usage: "Serve the Model Context Protocol over stdio for operators and agents (read-only unless --allow-writes)",
		Description: `An MCP server for the pipeline: its tools answer from the running qiflow's
HTTP API (--qiflow-url), from the brokers and from the database, whose
connections come from the profile (REDPANDA_*, DATABASE_URL, qiflow.yaml;
see qiflow profile). It speaks MCP over stdin and stdout; register it with
an MCP client as the command "qiflow mcp" (docs/mcp.md).

  qiflow mcp --qiflow-url http://127.0.0.1:4195
  qiflow mcp --allow-writes          # also schema_apply, reload and dlq_replay

Tools: streams_status, consumer_lag, reloads, dead_letters, schema_plan,
schema_status, topics_status, profile, query_range; with --allow-writes:
schema_apply, reload, dlq_replay. Resources: schema.yaml, topics.yaml, the pipelines.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagQiflowURL, Usage: "the running qiflow's HTTP `URL` (default: http:// + $QIFLOW_HTTP_ADDRESS, else http://127.0.0.1:4195)", EnvVars: []string{"QIFLOW_URL"}},
			&cli.BoolFlag{Name: flagAllowWrites, Usage: "enable the tools that change things: schema_apply, reload and dlq_replay"},
			&cli.StringFlag{Name: flagSchemaFile, Usage: "the schema spec `FILE` in use", Value: DefaultSchemaFile},
			&cli.StringFlag{Name: flagTopicsFile, Usage: "the topics `FILE` in use", Value: DefaultTopicsFile},
		},
		Action: func(c *cli.Context) error {
			p, err := profile.Current()
			if err != nil {
				return cli.Exit(fmt.Errorf("profile: %w", err), 1)
			}
			url := c.String(flagQiflowURL)
			if url == "" {
				url = urlOf(os.Getenv(httpAddressEnv))
			}
			srv, err := New(Config{
				QiflowURL:   url,
				AllowWrites: c.Bool(flagAllowWrites),
				SchemaFile:  absolute(c.String(flagSchemaFile)),
				TopicsFile:  absolute(c.String(flagTopicsFile)),
				Profile:     p,
				Version:     c.App.Version,
			})
			if err != nil {
				return cli.Exit(err, 1)
			}
			defer srv.Close()
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			// The client ends the session by closing stdin.
			if err := srv.Run(ctx, &mcp.StdioTransport{}); err != nil && ctx.Err() == nil {
				return cli.Exit(fmt.Errorf("mcp: %w", err), 1)
			}
			return nil
		},
	}
}

// urlOf turns an HTTP listen address into the URL a local client reaches it
// at: an unspecified host (0.0.0.0, ::, "") becomes the loopback.
func urlOf(address string) string {
	if address == "" {
		address = defaultHTTPAddress
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "http://" + address
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// absolute makes a file name absolute, so the server finds it whatever
// the client's working directory does later.
func absolute(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// FilesBeside returns the schema.yaml and topics.yaml next to a pipeline
// config, as the shipped pipelines/ directory holds them, for the server
// `qiflow run --watch` serves at /mcp.
func FilesBeside(config string) (schemaFile, topicsFile string) {
	dir := filepath.Dir(absolute(config))
	if st, err := os.Stat(config); err == nil && st.IsDir() {
		dir = absolute(config)
	}
	return filepath.Join(dir, "schema.yaml"), filepath.Join(dir, "topics.yaml")
}
