// Package hypertableadmin is the `qiflow schema` command: plan, apply and
// status of the declarative schema in pipelines/schema.yaml. The logic
// lives in internal/schema; this package turns it into a CLI.
package hypertableadmin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/schema"
)

// Flag names.
const (
	flagFile             = "file"
	flagDSN              = "dsn"
	flagAllowDestructive = "allow-destructive"
	flagJSON             = "json"
	flagDetailedExitCode = "detailed-exitcode"
	flagCheck            = "check"
)

// defaultDSN is the DATABASE_URL default of DESIGN.md.
const defaultDSN = "postgres://postgres@localhost:5432/qiflow"

// exitChanges is plan's exit code with --detailed-exitcode when the
// database differs from the spec, as in `terraform plan`.
const exitChanges = 2

// exitFailedJobs is status's exit code with --check when a background job
// (columnstore, retention or refresh policy) failed on its last run; 1 is
// kept for errors of the command itself.
const exitFailedJobs = 2

// CLICommand returns the `schema` command with its plan, apply and status
// subcommands. Register it with service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	common := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: flagFile, Aliases: []string{"f"}, Usage: "schema spec `FILE`", Required: true},
			&cli.StringFlag{Name: flagDSN, Usage: "PostgreSQL `URL` or DSN", EnvVars: []string{"DATABASE_URL"}, Value: defaultDSN},
		}
	}
	return &cli.Command{
		Name:  "schema",
		Usage: "Plan, apply and inspect the declarative TimescaleDB schema",
		Description: `The schema file (pipelines/schema.yaml) is the single truth for tables,
hypertables, columnstore, retention and continuous aggregates. A spec manages
only the tables and aggregates it owns (recorded in their comments under its
name: key, or its file's base name), so several specs can share a PostgreSQL
schema; the schema is created when missing. See docs/schema-ownership.md.

  qiflow schema plan   -f pipelines/schema.yaml   # the SQL apply would run; runs nothing
  qiflow schema apply  -f pipelines/schema.yaml   # make it so; a second apply changes nothing
  qiflow schema status -f pipelines/schema.yaml   # chunks, compression, jobs and their last error, aggregates
  qiflow schema status -f pipelines/schema.yaml --check   # exit 2 when a job failed

The database is --dsn, or DATABASE_URL.`,
		Subcommands: []*cli.Command{
			{
				Name:  "plan",
				Usage: "Print the ordered SQL that would make the database match the spec",
				Flags: append(common(),
					&cli.BoolFlag{Name: flagJSON, Usage: "print the plan as JSON"},
					&cli.BoolFlag{Name: flagDetailedExitCode, Usage: "exit 2 when there are changes, 0 when there are none"},
				),
				Action: planAction,
			},
			{
				Name:  "apply",
				Usage: "Apply the plan under an advisory lock, in one transaction where TimescaleDB allows",
				Flags: append(common(),
					&cli.BoolFlag{Name: flagAllowDestructive, Usage: "run destructive steps (dropping columns or aggregates, changing primary keys or types, shortening retention)"},
				),
				Action: applyAction,
			},
			{
				Name:  "status",
				Usage: "Show chunks and their compression, policies and their last run, and continuous aggregates",
				Flags: append(common(),
					&cli.BoolFlag{Name: flagJSON, Usage: "print the status as JSON"},
					&cli.BoolFlag{Name: flagCheck, Usage: "exit 2 when a policy's last run failed (for monitoring); the report is printed either way"},
				),
				Action: statusAction,
			},
		},
	}
}

// session loads the spec and connects; the caller closes the connection.
func session(c *cli.Context) (context.Context, context.CancelFunc, *schema.Spec, *pgx.Conn, error) {
	spec, err := schema.Load(c.String(flagFile))
	if err != nil {
		return nil, nil, nil, nil, err
	}
	ctx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	conn, err := pgx.Connect(ctx, c.String(flagDSN))
	if err != nil {
		cancel()
		return nil, nil, nil, nil, fmt.Errorf("connect to the database: %w", err)
	}
	return ctx, cancel, spec, conn, nil
}

func planAction(c *cli.Context) error {
	ctx, cancel, spec, conn, err := session(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer conn.Close(context.WithoutCancel(ctx))
	plan, err := schema.Plan(ctx, conn, spec)
	if err != nil {
		return cli.Exit(err, 1)
	}
	if c.Bool(flagJSON) {
		err = writeJSON(c.App.Writer, plan)
	} else {
		_, err = io.WriteString(c.App.Writer, plan.String())
	}
	if err != nil {
		return cli.Exit(err, 1)
	}
	if c.Bool(flagDetailedExitCode) && !plan.Empty() {
		return cli.Exit("", exitChanges)
	}
	return nil
}

func applyAction(c *cli.Context) error {
	ctx, cancel, spec, conn, err := session(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer conn.Close(context.WithoutCancel(ctx))
	rep, err := schema.Apply(ctx, conn, spec, schema.ApplyOptions{
		AllowDestructive: c.Bool(flagAllowDestructive),
		Log:              func(line string) { fmt.Fprintln(c.App.Writer, line) },
	})
	if err != nil {
		if rep != nil && rep.Plan != nil && len(rep.Applied) == 0 {
			fmt.Fprint(c.App.ErrWriter, rep.Plan.String())
		}
		return cli.Exit(err, 1)
	}
	fmt.Fprintf(c.App.Writer, "apply complete: %d change(s)\n", len(rep.Applied))
	return nil
}

func statusAction(c *cli.Context) error {
	ctx, cancel, spec, conn, err := session(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer conn.Close(context.WithoutCancel(ctx))
	st, err := schema.Status(ctx, conn, spec)
	if err != nil {
		return cli.Exit(err, 1)
	}
	if c.Bool(flagJSON) {
		err = writeJSON(c.App.Writer, st)
	} else {
		_, err = io.WriteString(c.App.Writer, st.String())
	}
	if err != nil {
		return cli.Exit(err, 1)
	}
	if failed := st.FailedJobs(); c.Bool(flagCheck) && len(failed) > 0 {
		return cli.Exit(fmt.Sprintf("%d background job(s) failed on their last run", len(failed)), exitFailedJobs)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
