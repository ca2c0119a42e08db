// Package dlq is the `qiflow dlq` command: list and show the dead letters
// of a `<topic>.dlq` topic with their qiflow-* headers, and redrive them
// to the topics they came from once their cause is fixed.
package dlq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/cliconn"
)

// Flag names.
const (
	flagTopic     = "topic"
	flagCode      = "code"
	flagCategory  = "category"
	flagSince     = "since"
	flagUntil     = "until"
	flagPartition = "partition"
	flagOffset    = "offset"
	flagBrokers   = "brokers"
	flagJSON      = "json"
	flagDryRun    = "dry-run"
	flagTimeout   = "timeout"
)

// exitSkipped is replay's exit code when some letters could not be
// redriven (no source topic header).
const exitSkipped = 2

// CLICommand returns the `dlq` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	filters := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: flagTopic, Usage: "dead-letter `TOPIC`, e.g. crypto-prices.dlq", Required: true},
			&cli.StringSliceFlag{Name: flagCode, Usage: "only letters with this qiflow-error-code `CODE` (repeatable)"},
			&cli.StringSliceFlag{Name: flagCategory, Usage: "only letters with this qiflow-error-category `CATEGORY`: BUSINESS, SECURITY, ... (repeatable)"},
			&cli.TimestampFlag{Name: flagSince, Usage: "only letters dead-lettered at or after this time (RFC 3339)", Layout: time.RFC3339Nano},
			&cli.TimestampFlag{Name: flagUntil, Usage: "only letters dead-lettered before this time (RFC 3339)", Layout: time.RFC3339Nano},
			&cli.IntFlag{Name: flagPartition, Usage: "only this partition of the dead-letter topic", Value: -1},
			&cli.Int64Flag{Name: flagOffset, Usage: "only the letter at this offset", Value: -1},
			&cli.StringFlag{Name: flagBrokers, Usage: "comma-separated seed `BROKERS` (default: the profile's, REDPANDA_BROKERS)"},
			&cli.DurationFlag{Name: flagTimeout, Usage: "give up after `DURATION`", Value: 5 * time.Minute},
			&cli.BoolFlag{Name: flagJSON, Usage: "print JSON"},
		}
	}
	return &cli.Command{
		Name:  "dlq",
		Usage: "List, show and redrive the dead letters of a <topic>.dlq topic",
		Description: `Dead letters are the messages the timescale output (or the router) could
never write, kept with their original key and value and the headers
qiflow-error-category, qiflow-error-code, qiflow-error, qiflow-source-topic,
qiflow-source-partition and qiflow-source-offset (docs/history.md).

  qiflow dlq list   --topic crypto-prices.dlq [--code invalid_value] [--since 2026-11-26T00:00:00Z]
  qiflow dlq show   --topic crypto-prices.dlq --partition 0 --offset 12
  qiflow dlq replay --topic crypto-prices.dlq --code invalid_value

replay sends each selected letter back to its qiflow-source-topic (and
partition), with its key and value byte for byte and the header
qiflow-redrive naming the letter. Fix the cause first (widen the column,
change the mapping). The idempotent writes of the ingest pipelines make a
second redrive add no rows. The dead-letter topic itself is not changed.
The cluster is --brokers or the profile's (REDPANDA_BROKERS, REDPANDA_TLS,
REDPANDA_USERNAME, ...).`,
		Subcommands: []*cli.Command{
			{Name: "list", Usage: "List dead letters, one a line", Flags: filters(), Action: listAction},
			{Name: "show", Usage: "Show dead letters with every header, key and value", Flags: filters(), Action: showAction},
			{
				Name: "replay", Usage: "Redrive dead letters to their source topics",
				Flags:  append(filters(), &cli.BoolFlag{Name: flagDryRun, Usage: "list what would be redriven and send nothing"}),
				Action: replayAction,
			},
		},
	}
}

// session makes a consuming and producing client; the caller closes it and
// calls cancel.
func session(c *cli.Context) (context.Context, context.CancelFunc, *kgo.Client, Filter, error) {
	filter := Filter{
		Codes: c.StringSlice(flagCode), Categories: c.StringSlice(flagCategory),
		Partition: int32(c.Int(flagPartition)), Offset: c.Int64(flagOffset),
	}
	if t := c.Timestamp(flagSince); t != nil {
		filter.Since = *t
	}
	if t := c.Timestamp(flagUntil); t != nil {
		filter.Until = *t
	}
	opts, err := cliconn.KafkaOptions(c.String(flagBrokers))
	if err != nil {
		return nil, nil, nil, filter, err
	}
	cl, err := kgo.NewClient(append(opts, ClientOptions()...)...)
	if err != nil {
		return nil, nil, nil, filter, fmt.Errorf("kafka client: %w", err)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, c.Duration(flagTimeout))
	return ctx, func() { cancel(); stop() }, cl, filter, nil
}

func listAction(c *cli.Context) error {
	ctx, cancel, cl, filter, err := session(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer cl.Close()
	var letters []Letter
	tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
	if !c.Bool(flagJSON) {
		fmt.Fprintln(tw, "LETTER\tTIME\tCATEGORY\tCODE\tSOURCE\tERROR")
	}
	err = Read(ctx, cl, c.String(flagTopic), filter, func(l Letter) error {
		if c.Bool(flagJSON) {
			letters = append(letters, l)
			return nil
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.ID(), l.Timestamp.UTC().Format(time.RFC3339Nano),
			orDash(l.Category), orDash(l.Code), source(&l), abbreviate(l.Error, 100))
		return err
	})
	if err != nil {
		return cli.Exit(err, 1)
	}
	if c.Bool(flagJSON) {
		return writeJSON(c.App.Writer, nonNil(letters))
	}
	return tw.Flush()
}

// shownLetter is a letter with everything, for show --json.
type shownLetter struct {
	Letter
	Key     string            `json:"key"`
	Value   string            `json:"value"`
	Headers map[string]string `json:"headers"`
}

func showAction(c *cli.Context) error {
	ctx, cancel, cl, filter, err := session(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer cl.Close()
	var shown []shownLetter
	err = Read(ctx, cl, c.String(flagTopic), filter, func(l Letter) error {
		if c.Bool(flagJSON) {
			s := shownLetter{Letter: l, Key: string(l.Key), Value: string(l.Value), Headers: map[string]string{}}
			for _, h := range l.Headers {
				s.Headers[h.Key] = string(h.Value)
			}
			shown = append(shown, s)
			return nil
		}
		return writeLetter(c.App.Writer, &l)
	})
	if err != nil {
		return cli.Exit(err, 1)
	}
	if c.Bool(flagJSON) {
		return writeJSON(c.App.Writer, nonNil(shown))
	}
	return nil
}

func writeLetter(w io.Writer, l *Letter) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s\n", l.ID(), l.Timestamp.UTC().Format(time.RFC3339Nano))
	fmt.Fprintf(&b, "  key: %q\n", l.Key)
	for _, h := range l.Headers {
		fmt.Fprintf(&b, "  %s: %s\n", h.Key, h.Value)
	}
	fmt.Fprintf(&b, "  value: %s\n\n", l.Value)
	_, err := io.WriteString(w, b.String())
	return err
}

func replayAction(c *cli.Context) error {
	ctx, cancel, cl, filter, err := session(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer cl.Close()
	dryRun, asJSON := c.Bool(flagDryRun), c.Bool(flagJSON)
	rep, err := Redrive(ctx, cl, c.String(flagTopic), filter, dryRun, func(l *Letter, skipped error) {
		switch {
		case skipped != nil:
			fmt.Fprintf(c.App.ErrWriter, "skipped %s: %v\n", l.ID(), skipped)
		case dryRun && !asJSON:
			fmt.Fprintf(c.App.Writer, "would redrive %s to %s\n", l.ID(), source(l))
		}
	})
	if err != nil {
		return cli.Exit(err, 1)
	}
	if c.Bool(flagJSON) {
		if err := writeJSON(c.App.Writer, rep); err != nil {
			return cli.Exit(err, 1)
		}
	} else {
		verb := "redrove"
		if rep.DryRun {
			verb = "would redrive"
		}
		fmt.Fprintf(c.App.Writer, "%s %d letters from %s; skipped %d\n", verb, rep.Redriven, c.String(flagTopic), len(rep.Skipped))
	}
	if len(rep.Skipped) > 0 {
		return cli.Exit("", exitSkipped)
	}
	return nil
}

func source(l *Letter) string {
	if l.SourceTopic == "" {
		return "-"
	}
	if l.SourcePartition < 0 {
		return l.SourceTopic
	}
	if l.SourceOffset < 0 {
		return fmt.Sprintf("%s/%d", l.SourceTopic, l.SourcePartition)
	}
	return fmt.Sprintf("%s/%d/%d", l.SourceTopic, l.SourcePartition, l.SourceOffset)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func abbreviate(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
