// Package replay is the `qiflow replay` command: it reads a time range of a
// table back out (internal/history) and produces it into a topic, each
// series on the partition the exchange_router gives it, in time order.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/cliconn"
	"github.com/qicore/qiflow/internal/history"
	exchangerouter "github.com/qicore/qiflow/plugins/exchange_router"
)

// Flag names.
const (
	flagTable      = "table"
	flagFrom       = "from"
	flagTo         = "to"
	flagTopic      = "topic"
	flagColumns    = "columns"
	flagTimeColumn = "time-column"
	flagKeyColumns = "key-columns"
	flagWhere      = "where"
	flagArg        = "arg"
	flagRouter     = "router"
	flagPartitions = "partitions"
	flagCheckpoint = "checkpoint"
	flagRestart    = "restart"
	flagDryRun     = "dry-run"
	flagPageSize   = "page-size"
	flagDSN        = "dsn"
	flagBrokers    = "brokers"
	flagJSON       = "json"
)

// Exit codes besides 0 and 1.
const (
	// exitInterrupted: stopped by a signal, with the checkpoint saved; the
	// same command resumes.
	exitInterrupted = 130
)

// CLICommand returns the `replay` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	return &cli.Command{
		Name:      "replay",
		Usage:     "Replay a time range of a table into a topic, in time order, each series on its router partition",
		UsageText: "qiflow replay --table TABLE --from RFC3339 --to RFC3339 --topic TOPIC [options]",
		Description: `Reads the rows of TABLE with from <= time < to in (time, primary key) order and
produces each as one wire-format message (docs/wire-format.md) to TOPIC. The
exchange_router's placement puts each exchange+symbol series on the partition
the live feed uses; --router FILE takes that router's fields (topic and
partitions default to --topic and the topic's partition count). The
database is --dsn or the profile's (DATABASE_URL); the cluster is --brokers
or the profile's (REDPANDA_BROKERS, REDPANDA_TLS, REDPANDA_USERNAME, ...).

The position is saved every second in the table qiflow_history_checkpoints
under --checkpoint (by default a name made of the table, topic and range).
An interrupted replay (Ctrl-C, SIGTERM: exit code 130) resumes when run
again, with the row after the last one the cluster acknowledged; after a
crash it repeats at most the last second. A complete replay deletes its
checkpoint. --dry-run only counts the rows.

  qiflow replay --table crypto_prices --from 2026-11-26T00:00:00Z --to 2026-11-27T00:00:00Z --topic crypto-prices-rebuild`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: flagTable, Usage: "`TABLE` to read, optionally schema.table", Required: true},
			&cli.TimestampFlag{Name: flagFrom, Usage: "first time of the range (RFC 3339), included", Layout: time.RFC3339Nano, Required: true},
			&cli.TimestampFlag{Name: flagTo, Usage: "end of the range (RFC 3339), excluded", Layout: time.RFC3339Nano, Required: true},
			&cli.StringFlag{Name: flagTopic, Usage: "`TOPIC` to produce to", Required: true},
			&cli.StringSliceFlag{Name: flagColumns, Usage: "`COLUMNS` to put in each message (default: all)"},
			&cli.StringFlag{Name: flagTimeColumn, Usage: "timestamptz `COLUMN` that orders the read (default: the time dimension or the first timestamptz of the primary key)"},
			&cli.StringSliceFlag{Name: flagKeyColumns, Usage: "`COLUMNS` that with the time column are unique and NOT NULL (default: the primary key); needed for a table without one"},
			&cli.StringFlag{Name: flagWhere, Usage: "extra SQL `CONDITION` on the table's columns, with $1, $2, ... for --arg values"},
			&cli.StringSliceFlag{Name: flagArg, Usage: "a parameter `VALUE` of --where, in order; repeatable"},
			&cli.StringFlag{Name: flagRouter, Usage: "YAML `FILE` with the exchange_router fields of the live feed"},
			&cli.IntFlag{Name: flagPartitions, Usage: "partitions of the router (default: the topic's)"},
			&cli.StringFlag{Name: flagCheckpoint, Usage: "checkpoint `NAME` (default: from table, topic and range)"},
			&cli.BoolFlag{Name: flagRestart, Usage: "forget the checkpoint and replay from --from"},
			&cli.BoolFlag{Name: flagDryRun, Usage: "count the rows that would be replayed, and produce nothing"},
			&cli.IntFlag{Name: flagPageSize, Usage: "rows per query", Value: history.DefaultPageSize},
			&cli.StringFlag{Name: flagDSN, Usage: "PostgreSQL `URL` (default: the profile's, DATABASE_URL)"},
			&cli.StringFlag{Name: flagBrokers, Usage: "comma-separated seed `BROKERS` (default: the profile's, REDPANDA_BROKERS)"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the summary as JSON"},
		},
		Action: action,
	}
}

// report is the command's summary, printed at the end.
type report struct {
	Table      string  `json:"table"`
	Topic      string  `json:"topic"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	Checkpoint string  `json:"checkpoint"`
	DryRun     bool    `json:"dryRun,omitempty"`
	Count      int64   `json:"count"`
	Seconds    float64 `json:"seconds"`
	RowsPerSec float64 `json:"rowsPerSecond"`
	Summary
}

func action(c *cli.Context) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	from, to := c.Timestamp(flagFrom).UTC(), c.Timestamp(flagTo).UTC()
	args := make([]any, 0, len(c.StringSlice(flagArg)))
	for _, a := range c.StringSlice(flagArg) {
		args = append(args, a)
	}
	rng := history.Range{
		Table: c.String(flagTable), Columns: c.StringSlice(flagColumns),
		TimeColumn: c.String(flagTimeColumn), KeyColumns: c.StringSlice(flagKeyColumns),
		From: from, To: to, Where: c.String(flagWhere), Args: args,
		PageSize: c.Int(flagPageSize),
	}
	rep := report{
		Table: rng.Table, Topic: c.String(flagTopic),
		From: from.Format(time.RFC3339Nano), To: to.Format(time.RFC3339Nano),
		Checkpoint: c.String(flagCheckpoint), DryRun: c.Bool(flagDryRun),
	}
	if rep.Checkpoint == "" {
		rep.Checkpoint = fmt.Sprintf("replay %s to %s [%s, %s)", rep.Table, rep.Topic, rep.From, rep.To)
	}

	db, err := cliconn.Database(ctx, c.String(flagDSN))
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer db.Close()
	cps, err := history.OpenCheckpoints(ctx, db)
	if err != nil {
		return cli.Exit(err, 1)
	}
	if c.Bool(flagRestart) && !rep.DryRun {
		if err := cps.Delete(ctx, rep.Checkpoint); err != nil {
			return cli.Exit(err, 1)
		}
	}
	cp, err := cps.Load(ctx, rep.Checkpoint)
	if err != nil {
		return cli.Exit(err, 1)
	}
	counting := rng
	if cp != nil && !c.Bool(flagRestart) {
		counting.After = &cp.Position
		fmt.Fprintf(c.App.ErrWriter, "resuming %q after %s rows (at %s)\n", rep.Checkpoint, grouped(cp.Rows), cp.Position.Time.Format(time.RFC3339Nano))
	}
	rd, err := history.NewReader(ctx, db, counting)
	if err != nil {
		return cli.Exit(err, 1)
	}
	if rep.Count, err = rd.Remaining(ctx); err != nil {
		return cli.Exit(err, 1)
	}
	if rep.DryRun {
		return printReport(c, rep, fmt.Sprintf("dry run: %s rows of %s in [%s, %s) would go to %s", grouped(rep.Count), rep.Table, rep.From, rep.To, rep.Topic))
	}

	kafkaOpts, err := cliconn.KafkaOptions(c.String(flagBrokers))
	if err != nil {
		return cli.Exit(err, 1)
	}
	cl, err := kgo.NewClient(append(kafkaOpts, ProducerOptions()...)...)
	if err != nil {
		return cli.Exit(fmt.Errorf("kafka client: %w", err), 1)
	}
	defer cl.Close()
	placer, err := newPlacer(ctx, cl, c.String(flagRouter), rep.Topic, c.Int(flagPartitions))
	if err != nil {
		return cli.Exit(err, 1)
	}

	errFile, isFile := c.App.ErrWriter.(*os.File)
	prog := newProgress(c.App.ErrWriter, isFile && term.IsTerminal(int(errFile.Fd())), rep.Count)
	sum, err := Run(ctx, Job{
		DB: db, Client: cl, Range: rng, Placer: placer, Checkpoint: rep.Checkpoint,
		Progress: prog.update,
	})
	prog.finish()
	rep.Summary = sum
	rep.Seconds = sum.Elapsed.Seconds()
	if rep.Seconds > 0 {
		rep.RowsPerSec = float64(sum.Rows) / rep.Seconds
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			fmt.Fprintf(c.App.ErrWriter, "interrupted after %s rows; run the same command again to resume\n", grouped(sum.ResumedAfter+sum.Rows))
			_ = printReport(c, rep, "")
			return cli.Exit("", exitInterrupted)
		}
		return cli.Exit(fmt.Errorf("replay %s: %w", rep.Table, err), 1)
	}
	return printReport(c, rep, fmt.Sprintf("replayed %s rows of %s in [%s, %s) to %s in %s (%s rows/s)",
		grouped(sum.Rows), rep.Table, rep.From, rep.To, rep.Topic, sum.Elapsed.Round(time.Millisecond), grouped(int64(rep.RowsPerSec))))
}

func printReport(c *cli.Context, rep report, line string) error {
	if c.Bool(flagJSON) {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	if line != "" {
		fmt.Fprintln(c.App.Writer, line)
	}
	return nil
}

// newPlacer builds the router placement from the router file, with topic
// set to topic and the partition count, when the file gives none, from
// the flag or the topic itself.
func newPlacer(ctx context.Context, cl *kgo.Client, file, topic string, partitions int) (*exchangerouter.Placer, error) {
	fields := map[string]any{"unknown_exchange": "default"}
	if file != "" {
		fields = map[string]any{}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--%s: %w", flagRouter, err)
		}
		if err := yaml.Unmarshal(data, &fields); err != nil {
			return nil, fmt.Errorf("--%s %s: %w", flagRouter, file, err)
		}
	}
	fields["topic"] = topic
	if partitions > 0 {
		fields["partitions"] = partitions
	}
	// A topic per exchange ({exchange} in the topic) cannot be looked up
	// before placing; the router's own partition count then holds.
	if !strings.Contains(topic, "{exchange}") {
		actual, err := topicPartitions(ctx, cl, topic)
		if err != nil {
			return nil, err
		}
		if _, ok := fields["partitions"]; !ok {
			fields["partitions"] = actual
		}
		if n, ok := fields["partitions"].(int); ok && n > actual {
			return nil, fmt.Errorf("the router has %d partitions, topic %s only %d", n, topic, actual)
		}
	} else if _, ok := fields["partitions"]; !ok {
		return nil, fmt.Errorf("topic %s is a template: give the partitions with --%s or in --%s", topic, flagPartitions, flagRouter)
	}
	conf, err := yaml.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return exchangerouter.NewPlacer(string(conf))
}

// topicPartitions returns the partition count of topic, which must exist.
func topicPartitions(ctx context.Context, cl *kgo.Client, topic string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("look up topic %s: %w", topic, err)
	}
	td, ok := topics[topic]
	if !ok || td.Err != nil {
		return 0, fmt.Errorf("topic %s does not exist: create it first (qiflow topics apply)", topic)
	}
	return len(td.Partitions), nil
}
