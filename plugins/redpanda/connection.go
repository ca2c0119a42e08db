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

	"github.com/qicore/qiflow/internal/profile"
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
	fieldDialTimeout   = "dial_timeout"
	fieldRetries       = "request_retries"
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
			Description("Brokers to bootstrap from. Each entry may hold several comma-separated addresses. Defaults to the profile's `redpanda.brokers` (docs/profiles.md) when omitted or empty.").
			Example([]string{"localhost:9092"}).
			Example([]string{"redpanda-0:9092,redpanda-1:9092"}).
			Optional(),
		service.NewStringField(fieldClientID).
			Description("Client ID reported to the brokers, visible in their logs and quotas. Defaults to the profile's `redpanda.client_id`.").
			Example("qiflow").
			Optional().
			Advanced(),
		service.NewTLSToggledField(fieldTLS).
			Description("TLS to the brokers. While `enabled` is false or the block is omitted, the profile's `redpanda.tls` applies."),
		service.NewObjectField(fieldSASL,
			service.NewStringEnumField(fieldSASLMechanism, "", mechanismNone, mechanismPlain, mechanismScramSHA256, mechanismScramSHA512).
				Description("SASL mechanism: `none` turns SASL off. Empty means the profile's `redpanda.sasl.mechanism`, and then SCRAM-SHA-256 when a user is set and no SASL otherwise.").
				Default(""),
			service.NewStringField(fieldSASLUser).
				Description("SASL user name. Empty means the profile's `redpanda.sasl.user`.").
				Default(""),
			service.NewStringField(fieldSASLPassword).
				Description("SASL password. Empty means the profile's, which comes from `QIFLOW_REDPANDA_SASL_PASSWORD`, `REDPANDA_PASSWORD` or a `password_file`.").
				Default("").
				Secret(),
		).
			Description("SASL authentication to the brokers. Each field left empty falls back to the profile's `redpanda.sasl`. Bad credentials stop the pipeline with a SECURITY error instead of retrying.").
			Optional(),
		service.NewDurationField(fieldDialTimeout).
			Description("How long connecting to a broker may take. Defaults to the profile's `redpanda.dial_timeout`.").
			Example("10s").
			Optional().
			Advanced(),
		service.NewIntField(fieldRetries).
			Description("How often the client retries a failed request (metadata, fetch, commit) before the error reaches the plugin, which then backs off and retries on its own. Produce requests are retried by the output without limit. Defaults to the profile's `redpanda.request_retries`.").
			Example(20).
			Optional().
			Advanced(),
	}
}

// connection is the parsed, validated connection configuration: the
// pipeline's fields, and the profile's values for those it leaves out.
type connection struct {
	seeds          []string
	clientID       string
	tls            *tls.Config
	sasl           sasl.Mechanism
	saslUser       string
	dialTimeout    time.Duration
	requestTimeout time.Duration
	retries        int
}

// parseConnection reads the connection fields, falling back to the
// profile for each one the pipeline omits. timeoutField names the plugin's
// field for the request timeout.
func parseConnection(conf *service.ParsedConfig, timeoutField string) (connection, error) {
	var c connection
	p, err := profile.Current()
	if err != nil {
		return c, fmt.Errorf("profile: %w", err)
	}
	rp := p.Redpanda
	lists, err := conf.FieldStringList(fieldSeedBrokers)
	if err != nil {
		return c, err
	}
	if c.seeds = splitSeeds(lists); len(c.seeds) == 0 {
		c.seeds = splitSeeds(rp.Brokers)
	}
	if len(c.seeds) == 0 {
		return c, fmt.Errorf("%s: at least one broker address is required (none in the pipeline or the %s profile)", fieldSeedBrokers, p.Name)
	}
	if c.clientID, err = stringOr(conf, rp.ClientID, fieldClientID); err != nil {
		return c, err
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return c, err
	}
	if tlsOn {
		c.tls = tlsConf
	} else if c.tls, err = rp.TLS.Config(); err != nil {
		return c, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	if c.sasl, c.saslUser, err = parseSASL(conf, p); err != nil {
		return c, fmt.Errorf("%s: %w", fieldSASL, err)
	}
	if c.dialTimeout, err = durationOr(conf, fieldDialTimeout, rp.DialTimeout); err != nil {
		return c, err
	}
	if c.requestTimeout, err = durationOr(conf, timeoutField, rp.RequestTimeout); err != nil {
		return c, err
	}
	if c.retries = rp.RequestRetries; conf.Contains(fieldRetries) {
		if c.retries, err = conf.FieldInt(fieldRetries); err != nil {
			return c, err
		}
	}
	if c.dialTimeout <= 0 || c.requestTimeout <= 0 || c.retries < 0 {
		return c, fmt.Errorf("%s and %s must be positive, %s not negative", fieldDialTimeout, timeoutField, fieldRetries)
	}
	return c, nil
}

// splitSeeds splits each entry at commas and drops blanks.
func splitSeeds(lists []string) []string {
	var seeds []string
	for _, l := range lists {
		for _, s := range strings.Split(l, ",") {
			if s = strings.TrimSpace(s); s != "" {
				seeds = append(seeds, s)
			}
		}
	}
	return seeds
}

// stringOr returns the string field at path, or fallback when it is absent
// or empty.
func stringOr(conf *service.ParsedConfig, fallback string, path ...string) (string, error) {
	if !conf.Contains(path...) {
		return fallback, nil
	}
	v, err := conf.FieldString(path...)
	if err != nil || v == "" {
		return fallback, err
	}
	return v, nil
}

// durationOr returns the duration field, or fallback when it is absent.
func durationOr(conf *service.ParsedConfig, field string, fallback time.Duration) (time.Duration, error) {
	if !conf.Contains(field) {
		return fallback, nil
	}
	return conf.FieldDuration(field)
}

// parseSASL reads the sasl block; each field it leaves empty comes from the
// profile. The profile's password (or password file) is read only when
// SASL is on and the pipeline gives none.
func parseSASL(conf *service.ParsedConfig, p *profile.Profile) (sasl.Mechanism, string, error) {
	ps := p.Redpanda.SASL
	mechanism, err := stringOr(conf, ps.Mechanism, fieldSASL, fieldSASLMechanism)
	if err != nil {
		return nil, "", err
	}
	user, err := stringOr(conf, ps.User, fieldSASL, fieldSASLUser)
	if err != nil {
		return nil, "", err
	}
	if mechanism == "" {
		mechanism = mechanismNone
		if user != "" {
			mechanism = mechanismScramSHA256
		}
	}
	if mechanism == mechanismNone {
		return nil, "", nil
	}
	if user == "" {
		return nil, "", fmt.Errorf("mechanism %s needs a user: set %s.%s, %s or REDPANDA_USERNAME (profile %s)",
			mechanism, fieldSASL, fieldSASLUser, profile.EnvName("redpanda.sasl.user"), p.Name)
	}
	pass, err := stringOr(conf, "", fieldSASL, fieldSASLPassword)
	if err != nil {
		return nil, "", err
	}
	if pass == "" {
		secret, err := ps.ResolvePassword()
		if err != nil {
			return nil, "", fmt.Errorf("profile %s: %w", p.Name, err)
		}
		pass = secret.Reveal()
	}
	switch mechanism {
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
		kgo.DialTimeout(c.dialTimeout),
		kgo.RequestRetries(c.retries),
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
