package mcp

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qicore/qiflow/internal/supervisor"
)

// httpSessionTimeout closes an HTTP session idle this long.
const httpSessionTimeout = 30 * time.Minute

// HTTPConfig configures the server `qiflow run --watch` serves over
// streamable HTTP.
type HTTPConfig struct {
	// HTTPAddress is the address qiflow's HTTP server listens on; the tools
	// read qiflow's API there, over the loopback when it listens on every
	// interface.
	HTTPAddress string
	// ConfigFile is the run's config file (or directory): schema.yaml and
	// topics.yaml are taken from beside it.
	ConfigFile  string
	AllowWrites bool
	Version     string
}

// HTTPHandler builds the server and returns its streamable HTTP handler,
// to be mounted behind a bearer token (internal/supervisor does), and the
// server, which the caller closes when the HTTP server is done.
func HTTPHandler(cfg HTTPConfig) (http.Handler, *Server, error) {
	schemaFile, topicsFile := FilesBeside(cfg.ConfigFile)
	srv, err := New(Config{
		QiflowURL:   urlOf(cfg.HTTPAddress),
		AllowWrites: cfg.AllowWrites,
		SchemaFile:  schemaFile,
		TopicsFile:  topicsFile,
		Version:     cfg.Version,
	})
	if err != nil {
		return nil, nil, err
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv.Server }, &mcp.StreamableHTTPOptions{
		SessionTimeout: httpSessionTimeout,
	})
	return h, srv, nil
}

// TokenEnv holds the bearer token of /mcp when no token file is named.
const TokenEnv = "QIFLOW_MCP_TOKEN"

// Mount serves the MCP server at /mcp of the supervisor's HTTP server when
// a token is given (tokenFile, else $QIFLOW_MCP_TOKEN); without one it
// mounts nothing. `qiflow run --watch` calls it with --mcp-token-file and
// --mcp-allow-writes. The server lives as long as the process.
func Mount(opts *supervisor.Options, tokenFile string, allowWrites bool, version string) error {
	token := os.Getenv(TokenEnv)
	if tokenFile != "" {
		raw, err := os.ReadFile(tokenFile)
		if err != nil {
			return fmt.Errorf("--mcp-token-file: %w", err)
		}
		token = strings.TrimSpace(string(raw))
		if token == "" {
			return fmt.Errorf("--mcp-token-file: %s is empty", tokenFile)
		}
	}
	switch {
	case token == "" && allowWrites:
		return fmt.Errorf("--mcp-allow-writes needs /mcp, which needs a bearer token: --mcp-token-file FILE or %s", TokenEnv)
	case token == "":
		return nil
	case opts.HTTPAddress == "":
		return errors.New("/mcp is served on the HTTP server, which is disabled")
	case len(opts.Targets) == 0:
		return errors.New("no config file given")
	}
	h, _, err := HTTPHandler(HTTPConfig{HTTPAddress: opts.HTTPAddress, ConfigFile: opts.Targets[0], AllowWrites: allowWrites, Version: version})
	if err != nil {
		return err
	}
	opts.MCP, opts.MCPToken = h, token
	return nil
}
