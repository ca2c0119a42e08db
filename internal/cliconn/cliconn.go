// Package cliconn opens the connections of qiflow's own commands (`qiflow
// replay`, `qiflow dlq`) the way the pipelines do: from the profile
// (qiflow.yaml, QIFLOW_ENV, DATABASE_URL, REDPANDA_* and QIFLOW_*
// variables; docs/profiles.md), with a command-line value, when given,
// winning over the profile's.
package cliconn

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/qicore/qiflow/internal/profile"
)

// Database opens a pool to dsn, or to the profile's database URL when dsn
// is empty, and checks that it connects. The profile's password is used
// when the URL carries none; the profile's pool size bounds the pool.
func Database(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	p, err := profile.Current()
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if dsn == "" {
		dsn = p.Database.URL.Reveal()
	}
	conf, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	cc := conf.ConnConfig
	if cc.Password == "" {
		secret, err := p.Database.ResolvePassword()
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", p.Name, err)
		}
		cc.Password = secret.Reveal()
	}
	if p.Database.PoolSize > 0 && !strings.Contains(dsn, "pool_max_conns") {
		conf.MaxConns = int32(p.Database.PoolSize)
	}
	pool, err := pgxpool.NewWithConfig(ctx, conf)
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		if pool != nil {
			pool.Close()
		}
		return nil, fmt.Errorf("connect to the database %s@%s/%s: %w", cc.User, cc.Host, cc.Database, err)
	}
	return pool, nil
}

// KafkaOptions returns franz-go options for the profile's cluster: seeds
// (brokers, comma-separated, when not empty), client id, timeouts, retries,
// TLS and SASL.
func KafkaOptions(brokers string) ([]kgo.Opt, error) {
	p, err := profile.Current()
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	rp := p.Redpanda
	seeds := splitSeeds([]string{brokers})
	if len(seeds) == 0 {
		seeds = splitSeeds(rp.Brokers)
	}
	if len(seeds) == 0 {
		return nil, fmt.Errorf("no broker addresses: pass --brokers or set REDPANDA_BROKERS (profile %s)", p.Name)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if rp.ClientID != "" {
		opts = append(opts, kgo.ClientID(rp.ClientID))
	}
	if rp.DialTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(rp.DialTimeout))
	}
	if rp.RequestRetries > 0 {
		opts = append(opts, kgo.RequestRetries(rp.RequestRetries))
	}
	tlsConf, err := rp.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	if tlsConf != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsConf))
	}
	mechanism := rp.SASL.Mechanism
	if mechanism == "" && rp.SASL.User != "" {
		mechanism = profile.MechanismScramSHA256
	}
	if mechanism == "" || mechanism == profile.MechanismNone {
		return opts, nil
	}
	secret, err := rp.SASL.ResolvePassword()
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	user, pass := rp.SASL.User, secret.Reveal()
	switch mechanism {
	case profile.MechanismPlain:
		opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
	case profile.MechanismScramSHA256:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
	case profile.MechanismScramSHA512:
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("profile %s: unknown SASL mechanism %q", p.Name, mechanism)
	}
	return opts, nil
}

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
