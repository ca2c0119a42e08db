package devcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/devenv"
	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/schema"
)

// demoDatabase is the database a dev run creates on its throwaway cluster;
// it is the database of DATABASE_URL's documented default.
const demoDatabase = "qiflow"

// services are the broker and database a dev run talks to, and what it
// started itself to provide them.
type services struct {
	seeds      []string
	brokerKind string
	dsn        string
	dbKind     string
	adm        *kadm.Client

	broker  *kfake.Cluster  // nil when REDPANDA_BROKERS was given
	cluster *devenv.Cluster // nil when DATABASE_URL was given
}

// startServices starts what o does not name: an in-process broker on
// 127.0.0.1 and a throwaway PostgreSQL cluster. On error it has stopped
// whatever it started.
func startServices(ctx context.Context, o options) (s *services, err error) {
	s = &services{seeds: o.brokers, brokerKind: o.external, dsn: o.dsn, dbKind: o.external}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.close())
		}
	}()
	if len(s.seeds) == 0 {
		// kfake listens on 127.0.0.1 only.
		kopts := []kfake.Opt{kfake.NumBrokers(1)}
		if o.brokerPort != 0 {
			kopts = append(kopts, kfake.Ports(o.brokerPort))
		}
		if s.broker, err = kfake.NewCluster(kopts...); err != nil {
			return s, fmt.Errorf("start the in-process broker on 127.0.0.1:%d (--%s): %w", o.brokerPort, flagBrokerPort, err)
		}
		s.seeds, s.brokerKind = s.broker.ListenAddrs(), "in-process kfake"
	}
	if s.dsn == "" {
		if s.cluster, err = devenv.StartClusterOn(o.databasePort); err != nil {
			if errors.Is(err, devenv.ErrPortInUse) {
				return s, fmt.Errorf("start a throwaway PostgreSQL: 127.0.0.1:%d is taken (--%s picks another; 0 any free one): %w", o.databasePort, flagDatabasePort, err)
			}
			return s, fmt.Errorf("start a throwaway PostgreSQL (or give --%s): %w", flagDatabase, err)
		}
		if s.dsn, err = s.cluster.CreateDatabase(ctx, demoDatabase); err != nil {
			return s, err
		}
		s.dbKind = "throwaway cluster, without TimescaleDB"
		if s.cluster.TimescalePreloaded() {
			s.dbKind = "throwaway cluster, TimescaleDB preloaded"
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.seeds...), kgo.ClientID("qiflow-dev"))
	if err != nil {
		return s, fmt.Errorf("kafka client for %s: %w", strings.Join(s.seeds, ","), err)
	}
	s.adm = kadm.NewClient(cl)
	return s, nil
}

// describe prints where the broker and the database are.
func (s *services) describe(out io.Writer) {
	fmt.Fprintf(out, "broker:   %s (%s)\n", strings.Join(s.seeds, ","), s.brokerKind)
	fmt.Fprintf(out, "database: %s (%s)\n", profile.RedactURL(s.dsn), s.dbKind)
}

// close stops what startServices started and removes its files.
func (s *services) close() error {
	if s.adm != nil {
		s.adm.Close()
	}
	if s.broker != nil {
		s.broker.Close()
	}
	if s.cluster != nil {
		if err := s.cluster.Close(); err != nil {
			return fmt.Errorf("remove the throwaway PostgreSQL: %w", err)
		}
	}
	return nil
}

// topicsSpec is the part of pipelines/topics.yaml a dev run needs.
type topicsSpec struct {
	Topics []struct {
		Name              string            `yaml:"name"`
		Partitions        int32             `yaml:"partitions"`
		ReplicationFactor int16             `yaml:"replication_factor"`
		Configs           map[string]string `yaml:"configs"`
	} `yaml:"topics"`
}

// createTopics creates the topics of the topics file at path that do not
// exist yet, with their partitions and configs and with replication capped
// at the broker count, as `qiflow topics apply` does. Existing topics are
// left as they are.
func createTopics(ctx context.Context, adm *kadm.Client, path string, out io.Writer) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read topics file: %w", err)
	}
	var f topicsSpec
	if err := yaml.Unmarshal(raw, &f); err != nil {
		return fmt.Errorf("parse topics file %s: %w", path, err)
	}
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("read cluster metadata: %w", err)
	}
	brokers := int16(max(len(meta.Brokers), 1))
	var created, existed int
	for _, t := range f.Topics {
		replicas := t.ReplicationFactor
		if replicas < 1 || replicas > brokers {
			replicas = brokers
		}
		configs := make(map[string]*string, len(t.Configs))
		for k, v := range t.Configs {
			configs[k] = &v
		}
		resp, err := adm.CreateTopic(ctx, max(t.Partitions, 1), replicas, configs, t.Name)
		if err == nil {
			err = resp.Err
		}
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			existed++
		case err != nil:
			return fmt.Errorf("create topic %s: %w", t.Name, err)
		default:
			created++
		}
	}
	fmt.Fprintf(out, "topics:   %d created, %d already there (%s)\n", created, existed, path)
	return nil
}

// applySchema applies the schema spec at path to the database at dsn.
func applySchema(ctx context.Context, dsn, path string, out io.Writer) error {
	spec, err := schema.Load(path)
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("connect to apply %s: %w", path, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rep, err := schema.Apply(ctx, conn, spec, schema.ApplyOptions{})
	if err != nil {
		return fmt.Errorf("apply %s: %w", path, err)
	}
	fmt.Fprintf(out, "schema:   %d change(s) applied (%s)\n", len(rep.Applied), path)
	return nil
}
