package mcp

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/qicore/qiflow/internal/profile"
)

// connections opens the brokers and the database the first time a tool
// needs them, from the profile (REDPANDA_*, DATABASE_URL, qiflow.yaml), and
// keeps them for the server's life: a server that answers only from
// qiflow's HTTP API never dials either.
type connections struct {
	profile *profile.Profile

	// mu guards the fields below; a dial happens under it, so that
	// concurrent tool calls share one client.
	mu    sync.Mutex
	kafka *kgo.Client
	db    *pgxpool.Pool
}

// dbPoolSize bounds the server's sessions: its queries are few and small.
const dbPoolSize = 2

// kafkaClient returns the broker client, dialling it on first use.
func (c *connections) kafkaClient() (*kgo.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kafka != nil {
		return c.kafka, nil
	}
	cl, err := c.newKafkaClient()
	if err != nil {
		return nil, err
	}
	c.kafka = cl
	return cl, nil
}

// newKafkaClient makes a client from the profile, with extra options (a
// consumer's partitions, say); the caller closes it.
func (c *connections) newKafkaClient(extra ...kgo.Opt) (*kgo.Client, error) {
	rp := c.profile.Redpanda
	opts := []kgo.Opt{kgo.SeedBrokers(rp.Brokers...), kgo.ClientID("qiflow-mcp")}
	if rp.DialTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(rp.DialTimeout))
	}
	if rp.RequestRetries > 0 {
		opts = append(opts, kgo.RequestRetries(rp.RequestRetries))
	}
	tlsConf, err := rp.TLS.Config()
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		opts = append(opts, kgo.DialTLSConfig(tlsConf))
	}
	if user := rp.SASL.User; user != "" {
		secret, err := rp.SASL.ResolvePassword()
		if err != nil {
			return nil, err
		}
		pass := secret.Reveal()
		switch strings.ToUpper(rp.SASL.Mechanism) {
		case "", profile.MechanismScramSHA256:
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case profile.MechanismScramSHA512:
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		case profile.MechanismPlain:
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		}
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka client for %s: %w", strings.Join(rp.Brokers, ","), err)
	}
	return cl, nil
}

// admin returns an admin client over the broker client.
func (c *connections) admin() (*kadm.Client, error) {
	cl, err := c.kafkaClient()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// database returns the pool, connecting on first use. Sessions run in UTC
// and name themselves qiflow-mcp in pg_stat_activity.
func (c *connections) database(ctx context.Context) (*pgxpool.Pool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db != nil {
		return c.db, nil
	}
	db := c.profile.Database
	dsn := db.URL.Reveal()
	conf, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database url %s: %w", profile.RedactURL(dsn), err)
	}
	if !profile.HasPassword(dsn) {
		secret, err := db.ResolvePassword()
		if err != nil {
			return nil, err
		}
		if secret != "" {
			conf.ConnConfig.Password = secret.Reveal()
		}
	}
	conf.MaxConns = dbPoolSize
	conf.ConnConfig.RuntimeParams["timezone"] = "UTC"
	conf.ConnConfig.RuntimeParams["application_name"] = "qiflow-mcp"
	if conf.ConnConfig.ConnectTimeout == 0 {
		conf.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, conf)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", profile.RedactURL(dsn), err)
	}
	c.db = pool
	return pool, nil
}

// close ends what was opened.
func (c *connections) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kafka != nil {
		c.kafka.Close()
	}
	if c.db != nil {
		c.db.Close()
	}
}
