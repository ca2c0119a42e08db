package mcp

import (
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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
