package mcp

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qicore/qiflow/internal/profile"
)

// Config says where the server finds the pipeline it answers for, and
// what it may do.
type Config struct {
	// QiflowURL is the HTTP API of the running `qiflow run --watch` (or
	// `streams --watch`), e.g. http://127.0.0.1:4195.
	QiflowURL string
	// AllowWrites enables the tools that change things (schema_apply,
	// reload). Without it they are listed, marked destructive, and refuse.
	AllowWrites bool
	// SchemaFile and TopicsFile are the schema.yaml and topics.yaml in use.
	SchemaFile string
	TopicsFile string
	// Profile holds the connections to the brokers and the database, and
	// the secrets kept out of every answer.
	Profile *profile.Profile
	// Version is qiflow's, reported to clients.
	Version string
}

// Server is qiflow's MCP server: the tools and resources of docs/mcp.md
// over one MCP SDK server, and the connections they share.
type Server struct {
	*mcp.Server
	tools *toolbox
}

// errWritesOff refuses a tool that changes things when the server runs
// without --allow-writes.
var errWritesOff = errors.New("this tool changes the pipeline and is off: restart `qiflow mcp` with --allow-writes (or `qiflow run --watch` with --mcp-allow-writes) to enable it")

// New builds the server. It dials nothing: each tool connects to what it
// needs on first use.
func New(cfg Config) (*Server, error) {
	if cfg.QiflowURL == "" {
		return nil, errors.New("no qiflow URL")
	}
	if cfg.Profile == nil {
		p, err := profile.Current()
		if err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		cfg.Profile = p
	}
	tb := &toolbox{
		cfg:    cfg,
		api:    newQiflowAPI(cfg.QiflowURL),
		conns:  &connections{profile: cfg.Profile},
		redact: newRedactor(cfg.Profile),
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: "qiflow", Title: "qiflow pipeline", Version: cfg.Version}, &mcp.ServerOptions{
		Instructions: serverInstructions,
	})
	tb.register(srv)
	tb.registerResources(srv)
	return &Server{Server: srv, tools: tb}, nil
}

// Close ends the connections the tools opened.
func (s *Server) Close() { s.tools.conns.close() }

// serverInstructions tell a model what the server is for.
const serverInstructions = `qiflow moves crypto market data from Redpanda topics into TimescaleDB hypertables.
These tools answer an operator's questions about the running pipeline: streams_status (is ingest keeping up,
what failed), consumer_lag (which partition lags), dead_letters (why a message went to the DLQ), reloads (did
the last reload apply), schema_status and schema_plan (is the schema in sync), topics_status, profile, and
query_range (what a series did in a time range). Tools that change things (schema_apply, reload,
dlq_replay) need --allow-writes.`

// toolbox holds what the tools share.
type toolbox struct {
	cfg    Config
	api    *qiflowAPI
	conns  *connections
	redact redactor
}

// Annotations: every read tool is read-only; a write tool may destroy.
var (
	readOnly = &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true}
	writes   = &mcp.ToolAnnotations{DestructiveHint: ptr(true)}
)

func ptr[T any](v T) *T { return &v }

// addTool registers a typed tool whose errors are redacted.
func addTool[In, Out any](tb *toolbox, srv *mcp.Server, t *mcp.Tool, h func(context.Context, In) (Out, error)) {
	mcp.AddTool(srv, t, func(ctx context.Context, _ *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
		out, err := h(ctx, in)
		return nil, out, tb.redact.err(err)
	})
}

// addWriteTool registers a tool that changes things: marked destructive,
// and refused unless writes are allowed.
func addWriteTool[In, Out any](tb *toolbox, srv *mcp.Server, t *mcp.Tool, h func(context.Context, In) (Out, error)) {
	t.Annotations = writes
	addTool(tb, srv, t, func(ctx context.Context, in In) (Out, error) {
		if !tb.cfg.AllowWrites {
			var zero Out
			return zero, fmt.Errorf("%s: %w", t.Name, errWritesOff)
		}
		return h(ctx, in)
	})
}

// register adds every tool.
func (tb *toolbox) register(srv *mcp.Server) {
	tb.registerPipelineTools(srv)
	tb.registerKafkaTools(srv)
	tb.registerSchemaTools(srv)
	tb.registerQueryTools(srv)
	tb.registerProfileTool(srv)
	tb.registerDLQReplayTool(srv)
}
