// Package devcmd is the `qiflow dev` command: the whole data path on this
// machine in one process. It starts an in-process Kafka-protocol broker
// and a throwaway PostgreSQL cluster (or uses REDPANDA_BROKERS and
// DATABASE_URL), creates the topics, applies the schema, runs the shipped
// feed and ingest pipelines, and prints a live summary until Ctrl-C.
package devcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/profile"
)

// Flag names of `qiflow dev`.
const (
	flagRate      = "rate"
	flagDuration  = "duration"
	flagPipelines = "pipelines"
	flagInterval  = "interval"
	flagBrokers   = "brokers"
	flagDatabase  = "database-url"
	flagLogLevel  = "log-level"
)

// CLICommand returns the `dev` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "Run the whole data path on this machine: broker, database, topics, schema, feed and ingest pipelines",
		Description: `Runs the shipped pipelines end to end in this process, with a live summary:

  qiflow dev                      # until Ctrl-C
  qiflow dev --rate 10000 --duration 1m

The broker is REDPANDA_BROKERS (--brokers) when set, else an in-process
Kafka-protocol broker (kfake) on 127.0.0.1. The database is DATABASE_URL
(--database-url) when set, else a throwaway PostgreSQL cluster started from
the system's binaries on 127.0.0.1, with TimescaleDB preloaded when it is
installed. The topics of topics.yaml are created, schema.yaml is applied,
and feed.yaml, prices.yaml, ohlcv.yaml and analytics.yaml of --pipelines run
in this process. Ctrl-C (SIGINT or SIGTERM) stops the feed, drains the
ingest pipelines, and removes everything the command started.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: flagRate, Usage: "feed `MESSAGES` per second", Value: 2000},
			&cli.DurationFlag{Name: flagDuration, Usage: "stop after `DURATION`; 0 runs until Ctrl-C"},
			&cli.StringFlag{Name: flagPipelines, Usage: "`DIR` holding feed.yaml, prices.yaml, ohlcv.yaml, analytics.yaml, schema.yaml and topics.yaml", Value: "pipelines"},
			&cli.DurationFlag{Name: flagInterval, Usage: "print the summary every `DURATION`", Value: 5 * time.Second},
			&cli.StringFlag{Name: flagBrokers, Usage: "comma-separated seed `BROKERS`; empty starts an in-process broker", EnvVars: []string{"REDPANDA_BROKERS"}},
			&cli.StringFlag{Name: flagDatabase, Usage: "PostgreSQL `URL`; empty starts a throwaway cluster", EnvVars: []string{"DATABASE_URL"}},
			&cli.StringFlag{Name: flagLogLevel, Usage: "pipeline log `LEVEL`: debug, info, warn or error", Value: "warn"},
		},
		Action: devAction,
	}
}

func devAction(c *cli.Context) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String(flagLogLevel))); err != nil {
		return cli.Exit(fmt.Errorf("--%s: %w", flagLogLevel, err), 1)
	}
	opts := options{
		rate:      c.Int(flagRate),
		pipelines: c.String(flagPipelines),
		interval:  c.Duration(flagInterval),
		brokers:   splitSeeds(c.String(flagBrokers)),
		dsn:       c.String(flagDatabase),
		out:       c.App.Writer,
		log:       slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: level})),
	}
	switch {
	case opts.rate < 1:
		return cli.Exit(fmt.Sprintf("--%s must be at least 1", flagRate), 1)
	case opts.interval <= 0:
		return cli.Exit(fmt.Sprintf("--%s must be positive", flagInterval), 1)
	case c.Duration(flagDuration) < 0:
		return cli.Exit(fmt.Sprintf("--%s must not be negative", flagDuration), 1)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d := c.Duration(flagDuration); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if err := run(ctx, opts); err != nil {
		return cli.Exit(err, 1)
	}
	return nil
}

// options is what a dev run needs, parsed from the flags.
type options struct {
	rate      int
	pipelines string
	interval  time.Duration
	brokers   []string // empty: start an in-process broker
	dsn       string   // empty: start a throwaway cluster
	out       io.Writer
	log       *slog.Logger
}

// pipelineFiles are the files of the pipelines directory a dev run reads.
var pipelineFiles = struct{ feed, prices, ohlcv, analytics, schema, topics string }{
	"feed.yaml", "prices.yaml", "ohlcv.yaml", "analytics.yaml", "schema.yaml", "topics.yaml",
}

// run brings the demo up, prints the summary until ctx is done, and tears
// everything down in reverse order: feed, ingest pipelines, broker,
// database.
func run(ctx context.Context, o options) (err error) {
	dir := o.pipelines
	for _, name := range []string{pipelineFiles.feed, pipelineFiles.prices, pipelineFiles.ohlcv,
		pipelineFiles.analytics, pipelineFiles.schema, pipelineFiles.topics} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("pipelines directory %s (--%s): %w", dir, flagPipelines, err)
		}
	}

	svc, err := startServices(ctx, o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.close()) }()
	fmt.Fprintf(o.out, "broker:   %s (%s)\n", strings.Join(svc.seeds, ","), svc.brokerKind)
	fmt.Fprintf(o.out, "database: %s (%s)\n", profile.RedactURL(svc.dsn), svc.dbKind)

	if err := createTopics(ctx, svc.adm, filepath.Join(dir, pipelineFiles.topics), o.out); err != nil {
		return err
	}
	if err := applySchema(ctx, svc.dsn, filepath.Join(dir, pipelineFiles.schema), o.out); err != nil {
		return err
	}

	restore, err := useServices(svc)
	if err != nil {
		return err
	}
	defer restore()
	env := map[string]string{"REDPANDA_BROKERS": strings.Join(svc.seeds, ","), "DATABASE_URL": svc.dsn}
	p, err := startPipelines(dir, o, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.out, "running feed.yaml at %d msg/s, prices.yaml, ohlcv.yaml and analytics.yaml; Ctrl-C stops\n", o.rate)

	sum, err := newSummary(ctx, svc.adm, svc.dsn)
	if err != nil {
		return errors.Join(err, p.stop())
	}
	defer sum.close()
	ticker := time.NewTicker(o.interval)
	defer ticker.Stop()
	var failed error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case failed = <-p.failed:
			break loop
		case <-ticker.C:
			sum.print(ctx, o.out)
		}
	}
	fmt.Fprintln(o.out, "stopping: draining the pipelines")
	stopErr := p.stop()
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	sum.print(final, o.out)
	sum.printLag(final, o.out)
	return errors.Join(failed, stopErr)
}

// splitSeeds splits a comma-separated broker list, dropping blanks.
func splitSeeds(s string) []string {
	var seeds []string
	for _, seed := range strings.Split(s, ",") {
		if seed = strings.TrimSpace(seed); seed != "" {
			seeds = append(seeds, seed)
		}
	}
	return seeds
}

// useServices installs a profile that points the pipelines' connections,
// which they take from the profile, at the services the command started or
// was given. An in-process broker speaks neither TLS nor SASL, whatever
// QIFLOW_ENV says.
func useServices(svc *services) (restore func(), err error) {
	current, err := profile.Current()
	if err != nil {
		return nil, err
	}
	dev := *current
	dev.Redpanda.Brokers = svc.seeds
	dev.Database.URL = profile.Secret(svc.dsn)
	dev.Database.Password, dev.Database.PasswordFile = "", "" // the DSN says all
	if svc.broker != nil {
		dev.Redpanda.TLS, dev.Redpanda.SASL = profile.TLS{}, profile.SASL{Mechanism: profile.MechanismNone}
	}
	return profile.Set(&dev), nil
}
