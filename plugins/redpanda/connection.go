// Package redpanda provides the redpanda input and output, built on franz-go.
//
// The input consumes in a consumer group and owns its offsets: it commits only
// the contiguous prefix of acked messages of each partition and replays
// nacked messages itself, because Benthos acks out of order and its outputs do
// not retry. The output produces with an idempotent, acks=all producer.
package redpanda

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Connection field names, shared by the input and the output.
const (
	fieldSeedBrokers   = "seed_brokers"
	fieldClientID      = "client_id"
	fieldTLS           = "tls"
	fieldSASL          = "sasl"
	fieldSASLMechanism = "mechanism"
	fieldSASLUser      = "user"
	fieldSASLPassword  = "password"
)

// SASL mechanisms accepted by the sasl.mechanism field.
const (
	mechanismNone        = "none"
	mechanismPlain       = "PLAIN"
	mechanismScramSHA256 = "SCRAM-SHA-256"
	mechanismScramSHA512 = "SCRAM-SHA-512"
)

// Connect retry backoff: from connectBackoffBase, doubling, up to
// connectBackoffMax, so an unreachable cluster costs one log line per attempt
// and attempts thin out.
const (
	connectBackoffBase = time.Second
	connectBackoffMax  = 10 * time.Second
)

func connectionFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringListField(fieldSeedBrokers).
			Description("Brokers to bootstrap from. Each entry may hold several comma-separated addresses.").
			Example([]string{"localhost:9092"}).
			Example([]string{"redpanda-0:9092,redpanda-1:9092"}),
		service.NewStringField(fieldClientID).
			Description("Client ID reported to the brokers, visible in their logs and quotas.").
			Default("qiflow").
			Advanced(),
		service.NewTLSToggledField(fieldTLS).
			Description("TLS to the brokers."),
		service.NewObjectField(fieldSASL,
			service.NewStringEnumField(fieldSASLMechanism, "", mechanismNone, mechanismPlain, mechanismScramSHA256, mechanismScramSHA512).
				Description("SASL mechanism. Empty means SCRAM-SHA-256 when a user is set and no SASL otherwise.").
				Default(""),
			service.NewStringField(fieldSASLUser).
				Description("SASL user name.").
				Default(""),
			service.NewStringField(fieldSASLPassword).
				Description("SASL password.").
				Default("").
				Secret(),
		).
			Description("SASL authentication to the brokers. Bad credentials stop the pipeline with a SECURITY error instead of retrying.").
			Optional(),
	}
}

// connection is the parsed, validated connection configuration.
type connection struct {
	seeds    []string
	clientID string
	tls      *tls.Config
	sasl     sasl.Mechanism
	saslUser string
}

func parseConnection(conf *service.ParsedConfig) (connection, error) {
	var c connection
	lists, err := conf.FieldStringList(fieldSeedBrokers)
	if err != nil {
		return c, err
	}
	for _, l := range lists {
		for _, s := range strings.Split(l, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.seeds = append(c.seeds, s)
			}
		}
	}
	if len(c.seeds) == 0 {
		return c, fmt.Errorf("%s: at least one broker address is required", fieldSeedBrokers)
	}
	if c.clientID, err = conf.FieldString(fieldClientID); err != nil {
		return c, err
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return c, err
	}
	if tlsOn {
		c.tls = tlsConf
	}
	if conf.Contains(fieldSASL) {
		if c.sasl, c.saslUser, err = parseSASL(conf.Namespace(fieldSASL)); err != nil {
			return c, fmt.Errorf("%s: %w", fieldSASL, err)
		}
	}
	return c, nil
}

func parseSASL(conf *service.ParsedConfig) (sasl.Mechanism, string, error) {
	mechanism, err := conf.FieldString(fieldSASLMechanism)
	if err != nil {
		return nil, "", err
	}
	user, err := conf.FieldString(fieldSASLUser)
	if err != nil {
		return nil, "", err
	}
	pass, err := conf.FieldString(fieldSASLPassword)
	if err != nil {
		return nil, "", err
	}
	if mechanism == "" {
		mechanism = mechanismNone
		if user != "" {
			mechanism = mechanismScramSHA256
		}
	}
	if mechanism != mechanismNone && user == "" {
		return nil, "", fmt.Errorf("mechanism %s needs a user", mechanism)
	}
	switch mechanism {
	case mechanismNone:
		return nil, "", nil
	case mechanismPlain:
		return plain.Auth{User: user, Pass: pass}.AsMechanism(), user, nil
	case mechanismScramSHA256:
		return scram.Auth{User: user, Pass: pass}.AsSha256Mechanism(), user, nil
	case mechanismScramSHA512:
		return scram.Auth{User: user, Pass: pass}.AsSha512Mechanism(), user, nil
	}
	return nil, "", fmt.Errorf("unknown mechanism %q", mechanism)
}

// clientOpts returns the franz-go options shared by consumers and producers.
func (c connection) clientOpts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.seeds...),
		kgo.ClientID(c.clientID),
	}
	if c.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(c.tls))
	}
	if c.sasl != nil {
		opts = append(opts, kgo.SASL(c.sasl))
	}
	return opts
}

// describe names the cluster for error messages, without secrets.
func (c connection) describe() string {
	d := "brokers " + strings.Join(c.seeds, ",")
	if c.sasl != nil {
		d += fmt.Sprintf(" (SASL %s as %q)", c.sasl.Name(), c.saslUser)
	}
	return d
}

// connectBackoff returns how long to wait after the attempt-th failed
// connection attempt, counting from 1.
func connectBackoff(attempt int) time.Duration {
	return min(connectBackoffBase<<min(attempt-1, 16), connectBackoffMax)
}

// ping checks that the cluster answers, with credentials, within ctx.
func ping(ctx context.Context, cl *kgo.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return cl.Ping(ctx)
}
