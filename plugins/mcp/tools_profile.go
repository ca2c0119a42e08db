package mcp

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type profileIn struct{}

type profileOut struct {
	Name    string         `json:"name" jsonschema:"the profile: development, staging or production"`
	File    string         `json:"file,omitempty" jsonschema:"the profile file it was read from"`
	Entries []profileEntry `json:"entries"`
}

type profileEntry struct {
	Key    string `json:"key"`
	Value  string `json:"value" jsonschema:"the value, secrets redacted"`
	Source string `json:"source" jsonschema:"where the value came from: default, the file, an environment variable, a flag"`
}

func (tb *toolbox) registerProfileTool(srv *mcp.Server) {
	addTool(tb, srv, &mcp.Tool{
		Name:        "profile",
		Title:       "Connection profile, redacted",
		Description: "The effective connection profile this server uses (brokers, TLS, SASL, database URL, pool size), each value with where it came from, secrets redacted: what `qiflow profile` prints.",
		Annotations: readOnly,
	}, func(context.Context, profileIn) (profileOut, error) {
		p := tb.cfg.Profile
		out := profileOut{Name: p.Name, File: p.File, Entries: []profileEntry{}}
		for _, e := range p.Entries() {
			out.Entries = append(out.Entries, profileEntry{Key: e.Key, Value: tb.redact.text(e.Value), Source: e.Source})
		}
		return out, nil
	})
}
