package mcp

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qicore/qiflow/internal/schema"
)

type schemaIn struct{}

type schemaApplyIn struct {
	AllowDestructive bool `json:"allow_destructive,omitempty" jsonschema:"also run destructive steps (dropping columns or aggregates, changing keys or types, shortening retention); default false, which refuses a plan that has any"`
}

type schemaApplyOut struct {
	Plan    *schema.PlanResult `json:"plan" jsonschema:"the plan made under the advisory lock"`
	Applied []schema.Step      `json:"applied" jsonschema:"the steps that ran, in order"`
}

func (tb *toolbox) registerSchemaTools(srv *mcp.Server) {
	addTool(tb, srv, &mcp.Tool{
		Name:        "schema_plan",
		Title:       "Schema plan: what apply would change",
		Description: "Compares schema.yaml with the database and lists the ordered SQL steps `qiflow schema apply` would run (none when the schema is in sync), destructive ones marked, and the features this server cannot have. Runs nothing. Same answer as `qiflow schema plan --json`.",
		Annotations: readOnly,
	}, func(ctx context.Context, _ schemaIn) (schema.PlanResult, error) {
		var plan *schema.PlanResult
		err := tb.withSchema(ctx, func(conn *pgx.Conn, spec *schema.Spec) (err error) {
			plan, err = schema.Plan(ctx, conn, spec)
			return err
		})
		if err != nil {
			return schema.PlanResult{}, err
		}
		return *plan, nil
	})
	addTool(tb, srv, &mcp.Tool{
		Name:        "schema_status",
		Title:       "Schema status: chunks, compression, policies, aggregates",
		Description: "The live state of schema.yaml's hypertables: chunks and their compression, columnstore/retention/refresh policies and their last run, continuous aggregates and how far they are refreshed. Same answer as `qiflow schema status --json`.",
		Annotations: readOnly,
	}, func(ctx context.Context, _ schemaIn) (schema.StatusReport, error) {
		var st *schema.StatusReport
		err := tb.withSchema(ctx, func(conn *pgx.Conn, spec *schema.Spec) (err error) {
			st, err = schema.Status(ctx, conn, spec)
			return err
		})
		if err != nil {
			return schema.StatusReport{}, err
		}
		return *st, nil
	})
	addWriteTool(tb, srv, &mcp.Tool{
		Name:        "schema_apply",
		Title:       "Apply schema.yaml to the database",
		Description: "Makes the database match schema.yaml, as `qiflow schema apply` does: under an advisory lock, in one transaction where TimescaleDB allows; destructive steps only with allow_destructive. Changes the database; needs --allow-writes.",
	}, func(ctx context.Context, in schemaApplyIn) (schemaApplyOut, error) {
		var rep *schema.ApplyReport
		err := tb.withSchema(ctx, func(conn *pgx.Conn, spec *schema.Spec) (err error) {
			rep, err = schema.Apply(ctx, conn, spec, schema.ApplyOptions{AllowDestructive: in.AllowDestructive})
			return err
		})
		if err != nil {
			return schemaApplyOut{}, err
		}
		return schemaApplyOut{Plan: rep.Plan, Applied: append([]schema.Step{}, rep.Applied...)}, nil
	})
}

// spec loads schema.yaml.
func (tb *toolbox) spec() (*schema.Spec, error) {
	if tb.cfg.SchemaFile == "" {
		return nil, fmt.Errorf("no schema file: start qiflow mcp with --schema-file")
	}
	return schema.Load(tb.cfg.SchemaFile)
}

// withSchema runs fn with the spec and a connection of its own.
func (tb *toolbox) withSchema(ctx context.Context, fn func(*pgx.Conn, *schema.Spec) error) error {
	spec, err := tb.spec()
	if err != nil {
		return err
	}
	pool, err := tb.conns.database(ctx)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	defer conn.Release()
	return fn(conn.Conn(), spec)
}
