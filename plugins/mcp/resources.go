package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Resource URIs.
const (
	uriSchema         = "qiflow://schema.yaml"
	uriTopics         = "qiflow://topics.yaml"
	uriPipelines      = "qiflow://pipelines"
	uriPipelinePrefix = "qiflow://pipelines/"
	uriPipelineTmpl   = uriPipelinePrefix + "{stream}"
)

const mimeYAML = "application/yaml"

// registerResources adds the files in use: schema.yaml, topics.yaml, and
// each running stream's pipeline config, secrets masked.
func (tb *toolbox) registerResources(srv *mcp.Server) {
	srv.AddResource(&mcp.Resource{
		URI: uriSchema, Name: "schema.yaml", MIMEType: mimeYAML,
		Description: "The schema spec in use (tables, hypertables, columnstore, retention, continuous aggregates): " + tb.cfg.SchemaFile,
	}, tb.fileResource(uriSchema, tb.cfg.SchemaFile))
	srv.AddResource(&mcp.Resource{
		URI: uriTopics, Name: "topics.yaml", MIMEType: mimeYAML,
		Description: "The topics file in use (partitions, replication, configs): " + tb.cfg.TopicsFile,
	}, tb.fileResource(uriTopics, tb.cfg.TopicsFile))
	srv.AddResource(&mcp.Resource{
		URI: uriPipelines, Name: "pipelines", MIMEType: "application/json",
		Description: "The streams the running qiflow runs, each with its config file and the URI of its config (" + uriPipelineTmpl + ")",
	}, tb.pipelinesResource)
	srv.AddResourceTemplate(&mcp.ResourceTemplate{
		URITemplate: uriPipelineTmpl, Name: "pipeline", MIMEType: mimeYAML,
		Description: "The pipeline config a running stream was started from, secrets masked; list the streams with " + uriPipelines,
	}, tb.pipelineResource)
}

func (tb *toolbox) fileResource(uri, path string) mcp.ResourceHandler {
	return func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		if path == "" {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, tb.redact.err(fmt.Errorf("read %s: %w", path, err))
		}
		return yamlResult(uri, tb.redact.yaml(string(raw))), nil
	}
}

// pipelineEntry is one stream of qiflow://pipelines.
type pipelineEntry struct {
	Stream string `json:"stream"`
	File   string `json:"file"`
	URI    string `json:"uri"`
}

func (tb *toolbox) pipelinesResource(ctx context.Context, _ *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	rel, err := tb.api.reloads(ctx)
	if err != nil {
		return nil, tb.redact.err(err)
	}
	entries := []pipelineEntry{}
	for _, st := range rel.Streams {
		if st.File != "" {
			entries = append(entries, pipelineEntry{Stream: st.Stream, File: st.File, URI: uriPipelinePrefix + st.Stream})
		}
	}
	body, err := json.MarshalIndent(entries, "", "  ")
	if err != nil {
		return nil, err
	}
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uriPipelines, MIMEType: "application/json", Text: string(body)}}}, nil
}

func (tb *toolbox) pipelineResource(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
	uri := req.Params.URI
	stream := strings.TrimPrefix(uri, uriPipelinePrefix)
	rel, err := tb.api.reloads(ctx)
	if err != nil {
		return nil, tb.redact.err(err)
	}
	// Only a file qiflow reports running is served: the stream name is
	// looked up, never used as a path.
	for _, st := range rel.Streams {
		if st.Stream == stream && st.File != "" {
			raw, err := os.ReadFile(st.File)
			if err != nil {
				return nil, tb.redact.err(fmt.Errorf("read %s: %w", st.File, err))
			}
			return yamlResult(uri, tb.redact.yaml(string(raw))), nil
		}
	}
	return nil, mcp.ResourceNotFoundError(uri)
}

func yamlResult(uri, text string) *mcp.ReadResourceResult {
	return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: uri, MIMEType: mimeYAML, Text: text}}}
}
