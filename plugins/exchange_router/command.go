package exchangerouter

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/urfave/cli/v2"
)

// Flag names of `qiflow topics`.
const (
	flagFile      = "file"
	flagBrokers   = "brokers"
	flagTLS       = "tls"
	flagUser      = "user"
	flagPassword  = "password"
	flagMechanism = "sasl-mechanism"
	flagJSON      = "json"
	flagTimeout   = "timeout"
	// flagAllowPartitionIncrease lets apply raise partitions of existing
	// topics to the file's.
	flagAllowPartitionIncrease = "allow-partition-increase"
)

// exitDiffers is apply's exit code when a topic differs from its spec.
const exitDiffers = 2

// CLICommand returns the `topics` command with its apply and status
// subcommands. Register it with service.CLIOptAddCommand.
func CLICommand() *cli.Command {
	connection := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: flagBrokers, Usage: "comma-separated seed `BROKERS`", EnvVars: []string{"REDPANDA_BROKERS"}, Value: "localhost:9092"},
			&cli.BoolFlag{Name: flagTLS, Usage: "connect with TLS", EnvVars: []string{"REDPANDA_TLS"}},
			&cli.StringFlag{Name: flagUser, Usage: "SASL `USER`", EnvVars: []string{"REDPANDA_USERNAME"}},
			&cli.StringFlag{Name: flagPassword, Usage: "SASL `PASSWORD`", EnvVars: []string{"REDPANDA_PASSWORD"}},
			&cli.StringFlag{Name: flagMechanism, Usage: "SASL `MECHANISM`: PLAIN, SCRAM-SHA-256 (the default with a user) or SCRAM-SHA-512", EnvVars: []string{"REDPANDA_SASL_MECHANISM"}},
			&cli.DurationFlag{Name: flagTimeout, Usage: "give up after `DURATION`", Value: 30 * time.Second},
			&cli.BoolFlag{Name: flagJSON, Usage: "print JSON"},
		}
	}
	return &cli.Command{
		Name:  "topics",
		Usage: "Create and inspect the Redpanda topics of a topics file",
		Description: `The topics file (pipelines/topics.yaml) lists the topics qiflow needs, with
their partitions, replication factor and configs.

  qiflow topics apply  -f pipelines/topics.yaml  # create missing topics; report, never change, the rest
  qiflow topics apply  -f pipelines/topics.yaml --allow-partition-increase  # also raise partitions
  qiflow topics status [-f pipelines/topics.yaml] # partitions, configs, end offsets, consumer lag

Config values are checked before anything is sent: retention.ms takes
milliseconds ("604800000"), not "7d". The replication factor is capped at
the cluster's broker count, with a warning. apply exits with code 2 when an
existing topic differs from the file. The cluster is
--brokers, or REDPANDA_BROKERS; SASL and TLS come from REDPANDA_USERNAME,
REDPANDA_PASSWORD, REDPANDA_SASL_MECHANISM and REDPANDA_TLS.`,
		Subcommands: []*cli.Command{
			{
				Name:  "apply",
				Usage: "Create the missing topics of the file and report topics that differ from it",
				Flags: append(connection(),
					&cli.StringFlag{Name: flagFile, Aliases: []string{"f"}, Usage: "topics `FILE`", Required: true},
					&cli.BoolFlag{Name: flagAllowPartitionIncrease, Usage: "raise the partitions of existing topics to the file's (never lowers them; keyed records then map to other partitions)"},
				),
				Action: topicsApplyAction,
			},
			{
				Name:   "status",
				Usage:  "Show partitions, configs, end offsets and consumer-group lag of the file's topics, or of all topics",
				Flags:  append(connection(), &cli.StringFlag{Name: flagFile, Aliases: []string{"f"}, Usage: "topics `FILE`; without it, every topic"}),
				Action: topicsStatusAction,
			},
		},
	}
}

// adminSession makes an admin client from the flags; the caller closes it
// and cancels the context.
func adminSession(c *cli.Context) (context.Context, context.CancelFunc, *kadm.Client, error) {
	var seeds []string
	for _, s := range strings.Split(c.String(flagBrokers), ",") {
		if s = strings.TrimSpace(s); s != "" {
			seeds = append(seeds, s)
		}
	}
	if len(seeds) == 0 {
		return nil, nil, nil, fmt.Errorf("--%s: no broker addresses", flagBrokers)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("qiflow-topics")}
	if c.Bool(flagTLS) {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if user := c.String(flagUser); user != "" {
		pass := c.String(flagPassword)
		switch strings.ToUpper(c.String(flagMechanism)) {
		case "", "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		default:
			return nil, nil, nil, fmt.Errorf("--%s: unknown SASL mechanism %q", flagMechanism, c.String(flagMechanism))
		}
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("kafka client: %w", err)
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, c.Duration(flagTimeout))
	return ctx, func() { cancel(); stop() }, kadm.NewClient(cl), nil
}

func topicsApplyAction(c *cli.Context) error {
	spec, err := loadTopics(c.String(flagFile))
	if err != nil {
		return cli.Exit(err, 1)
	}
	ctx, cancel, adm, err := adminSession(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer adm.Close()
	outcomes, err := applyTopics(ctx, adm, spec, applyOptions{allowPartitionIncrease: c.Bool(flagAllowPartitionIncrease)})
	if err != nil {
		return cli.Exit(fmt.Errorf("apply %s to %s: %w", c.String(flagFile), c.String(flagBrokers), err), 1)
	}
	if c.Bool(flagJSON) {
		err = writeJSON(c.App.Writer, outcomes)
	} else {
		for _, o := range outcomes {
			if _, err = fmt.Fprintln(c.App.Writer, o); err != nil {
				break
			}
		}
	}
	if err != nil {
		return cli.Exit(err, 1)
	}
	for _, o := range outcomes {
		if o.Outcome == outcomeDiffers {
			return cli.Exit("", exitDiffers)
		}
	}
	return nil
}

func topicsStatusAction(c *cli.Context) error {
	var names, keys []string
	if path := c.String(flagFile); path != "" {
		spec, err := loadTopics(path)
		if err != nil {
			return cli.Exit(err, 1)
		}
		names = spec.names()
		seen := map[string]bool{}
		for _, t := range spec.Topics {
			for k := range t.Configs {
				if !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	ctx, cancel, adm, err := adminSession(c)
	if err != nil {
		return cli.Exit(err, 1)
	}
	defer cancel()
	defer adm.Close()
	status, err := topicsStatus(ctx, adm, names, keys)
	if err != nil {
		return cli.Exit(fmt.Errorf("status of %s: %w", c.String(flagBrokers), err), 1)
	}
	if c.Bool(flagJSON) {
		err = writeJSON(c.App.Writer, status)
	} else {
		for _, s := range status {
			if _, err = io.WriteString(c.App.Writer, s.String()); err != nil {
				break
			}
		}
	}
	if err != nil {
		return cli.Exit(err, 1)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
