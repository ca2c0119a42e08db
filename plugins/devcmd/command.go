// Package devcmd is the `qiflow dev` command: the whole data path on this
// machine in one process. It starts an in-process Kafka-protocol broker
// and a throwaway PostgreSQL cluster, creates the topics, applies the
// schema, runs the shipped feed and ingest pipelines, and shows a live
// summary until Ctrl-C. With --services-only it starts just the two
// services, for the README's walkthroughs on a machine without Docker.
package devcmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/logsetup"
)

// Flag names of `qiflow dev`.
const (
	flagRate         = "rate"
	flagDuration     = "duration"
	flagPipelines    = "pipelines"
	flagInterval     = "interval"
	flagBadShare     = "bad-share"
	flagServicesOnly = "services-only"
	flagBrokerPort   = "broker-port"
	flagDatabasePort = "database-port"
	flagUseEnv       = "use-env"
	flagBrokers      = "brokers"
	flagDatabase     = "database-url"
	flagLogLevel     = "log-level"
	flagLogFormat    = "log-format"
	flagFormat       = "format"
)

// The ports --services-only listens on unless told otherwise: those the
// README's walkthroughs and docker-compose.yml publish.
const (
	servicesBrokerPort   = 19092
	servicesDatabasePort = 15432
)

// CLICommand returns the `dev` command. Register it with
// service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "Run the whole data path on this machine: broker, database, topics, schema, feed and ingest pipelines",
		Description: fmt.Sprintf(`Runs the shipped pipelines end to end in this process, with a live summary:

  qiflow dev                      # until Ctrl-C
  qiflow dev --rate 10000 --duration 1m --bad-share 0.01
  qiflow dev --format avro        # prices as Confluent-framed Avro through a schema registry
  qiflow dev --services-only      # only a broker and a database, for the README's walkthroughs

It starts its own services: an in-process Kafka-protocol broker (kfake) and
a throwaway PostgreSQL cluster from the system's binaries, both on
127.0.0.1, with TimescaleDB preloaded when it is installed. It ignores
REDPANDA_BROKERS and DATABASE_URL unless --%s is given (or --%s and
--%s name services), and then says loudly that synthetic data goes into
those topics and tables. The topics of topics.yaml are created, schema.yaml
is applied, and feed.yaml, prices.yaml, ohlcv.yaml and analytics.yaml of
--pipelines run in this process. Ctrl-C (SIGINT or SIGTERM) stops the feed,
drains the ingest pipelines, and removes everything the command started.

--%s avro runs the prices in Avro: the run serves an in-process schema
registry (franz-go's srfake) on 127.0.0.1, the feed encodes its prices
with schemas/price.avsc into crypto-prices-avro (subject
crypto-prices-avro-value), and examples/prices_avro.yaml writes them into
crypto_prices. Candles and analytics stay JSON. Bad prices are refused by
the feed's encoder and go to crypto-prices-avro.dlq from the feed.

--%s starts only the broker (on 127.0.0.1:%d) and the database (on
127.0.0.1:%d, database qiflow), prints the exports that point qiflow at
them, and runs until Ctrl-C.`, flagUseEnv, flagBrokers, flagDatabase, flagFormat, flagServicesOnly, servicesBrokerPort, servicesDatabasePort),
		Flags: []cli.Flag{
			&cli.IntFlag{Name: flagRate, Usage: "feed `MESSAGES` per second", Value: 2000},
			&cli.DurationFlag{Name: flagDuration, Usage: "stop after `DURATION`; 0 runs until Ctrl-C"},
			&cli.StringFlag{Name: flagPipelines, Usage: "`DIR` holding feed.yaml, prices.yaml, ohlcv.yaml, analytics.yaml, schema.yaml and topics.yaml", Value: "pipelines"},
			&cli.DurationFlag{Name: flagInterval, Usage: "refresh the summary every `DURATION`", Value: 5 * time.Second},
			&cli.Float64Flag{Name: flagBadShare, Usage: "`SHARE` of deliberately bad feed messages, in [0, 1], to see the dead letters at work"},
			&cli.BoolFlag{Name: flagServicesOnly, Usage: "start only the broker and the database, print their exports, and run until Ctrl-C"},
			&cli.IntFlag{Name: flagBrokerPort, Usage: fmt.Sprintf("`PORT` of the in-process broker; 0 picks a free one (default %d with --%s, else 0)", servicesBrokerPort, flagServicesOnly), DefaultText: "see usage"},
			&cli.IntFlag{Name: flagDatabasePort, Usage: fmt.Sprintf("`PORT` of the throwaway PostgreSQL; 0 picks a free one (default %d with --%s, else 0)", servicesDatabasePort, flagServicesOnly), DefaultText: "see usage"},
			&cli.BoolFlag{Name: flagUseEnv, Usage: "use REDPANDA_BROKERS and DATABASE_URL from the environment instead of starting services: synthetic data goes into real topics and tables"},
			&cli.StringFlag{Name: flagBrokers, Usage: "use these comma-separated seed `BROKERS` (no SASL or TLS) instead of the in-process broker"},
			&cli.StringFlag{Name: flagDatabase, Usage: "use this PostgreSQL `URL` instead of a throwaway cluster"},
			&cli.StringFlag{Name: flagFormat, Usage: "`FORMAT` of the prices on the wire: json, or avro through an in-process schema registry", Value: formatJSON},
			&cli.StringFlag{Name: flagLogLevel, Usage: "pipeline log `LEVEL`: off, error, warn, info, debug or trace (warn, below the summary, rather than logger.level's INFO)", Value: "warn"},
			&cli.StringFlag{Name: flagLogFormat, Usage: "pipeline log `FORMAT`: logfmt or json, as logger.format", Value: logsetup.Default().Format},
		},
		Action: devAction,
	}
}

func devAction(c *cli.Context) error {
	o, err := parseOptions(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d := c.Duration(flagDuration); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	if o.servicesOnly {
		err = runServices(ctx, o)
	} else {
		err = run(ctx, o)
	}
	if err != nil {
		return cli.Exit(err, 1)
	}
	return nil
}

// options is what a dev run needs, parsed from the flags.
type options struct {
	rate         int
	badShare     float64
	pipelines    string
	interval     time.Duration
	servicesOnly bool
	// format is --format; ingest are its ingest pipelines.
	format       string
	ingest       []ingestPipeline
	brokerPort   int      // of the in-process broker; 0 picks a free one
	databasePort int      // of the throwaway cluster; 0 picks a free one
	brokers      []string // empty: start an in-process broker
	dsn          string   // empty: start a throwaway cluster
	// external says where brokers and dsn came from, for the warning;
	// empty when the run uses only its own services.
	external string
	out      io.Writer
	log      *slog.Logger
	logs     *screen // the terminal the summary redraws, or nil
}

func parseOptions(c *cli.Context) (options, error) {
	logConf := logsetup.Default()
	logConf.Level, logConf.Format = c.String(flagLogLevel), c.String(flagLogFormat)
	if _, err := logsetup.ParseLevel(logConf.Level); err != nil {
		return options{}, fmt.Errorf("--%s: %w", flagLogLevel, err)
	}
	if err := logsetup.CheckFormat(logConf.Format); err != nil {
		return options{}, fmt.Errorf("--%s: %w", flagLogFormat, err)
	}
	o := options{
		rate:         c.Int(flagRate),
		badShare:     c.Float64(flagBadShare),
		pipelines:    c.String(flagPipelines),
		interval:     c.Duration(flagInterval),
		servicesOnly: c.Bool(flagServicesOnly),
		format:       c.String(flagFormat),
		brokerPort:   c.Int(flagBrokerPort),
		databasePort: c.Int(flagDatabasePort),
		brokers:      splitSeeds(c.String(flagBrokers)),
		dsn:          c.String(flagDatabase),
		out:          c.App.Writer,
	}
	if o.servicesOnly {
		if !c.IsSet(flagBrokerPort) {
			o.brokerPort = servicesBrokerPort
		}
		if !c.IsSet(flagDatabasePort) {
			o.databasePort = servicesDatabasePort
		}
	}
	var named []string
	if len(o.brokers) > 0 {
		named = append(named, "--"+flagBrokers)
	}
	if o.dsn != "" {
		named = append(named, "--"+flagDatabase)
	}
	if c.Bool(flagUseEnv) {
		if len(o.brokers) == 0 {
			o.brokers = splitSeeds(os.Getenv("REDPANDA_BROKERS"))
		}
		if o.dsn == "" {
			o.dsn = os.Getenv("DATABASE_URL")
		}
		if len(o.brokers) == 0 && o.dsn == "" {
			return o, fmt.Errorf("--%s: neither REDPANDA_BROKERS nor DATABASE_URL is set", flagUseEnv)
		}
		named = append(named, "--"+flagUseEnv)
	}
	o.external = strings.Join(named, " and ")
	o.ingest = ingestFor(o.format)
	switch {
	case o.format != formatJSON && o.format != formatAvro:
		return o, fmt.Errorf("--%s must be %s or %s", flagFormat, formatJSON, formatAvro)
	case o.rate < 1:
		return o, fmt.Errorf("--%s must be at least 1", flagRate)
	case o.interval <= 0:
		return o, fmt.Errorf("--%s must be positive", flagInterval)
	case c.Duration(flagDuration) < 0:
		return o, fmt.Errorf("--%s must not be negative", flagDuration)
	case o.badShare < 0 || o.badShare > 1:
		return o, fmt.Errorf("--%s must be in [0, 1]", flagBadShare)
	case o.servicesOnly && o.external != "":
		return o, fmt.Errorf("--%s starts the services; it cannot be combined with %s", flagServicesOnly, o.external)
	case o.brokerPort < 0 || o.brokerPort > 65535 || o.databasePort < 0 || o.databasePort > 65535:
		return o, fmt.Errorf("--%s and --%s must be ports, 0 to 65535", flagBrokerPort, flagDatabasePort)
	}
	o.logs = newScreen(c.App.Writer, c.App.ErrWriter)
	logOut := c.App.ErrWriter
	if o.logs != nil {
		logOut = o.logs.logWriter()
	}
	// The pipelines log as `qiflow run` and `run --watch` do (one setup,
	// internal/logsetup); logConf names no file, so there is none to close.
	log, _, err := logsetup.New(logOut, logConf)
	o.log = log
	return o, err
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
