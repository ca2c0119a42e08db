package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// kafkaTimeout bounds each broker helper: producing, consuming to the end,
// and each admin request.
const kafkaTimeout = 60 * time.Second

// Broker is an in-process kfake Kafka cluster listening on 127.0.0.1, closed
// when the test that made it ends. Its methods are safe for concurrent use.
type Broker struct {
	cfg   brokerConfig
	seeds []string       // host:port of each broker, kept across restarts
	ports []int          // the ports in seeds, reused by Start
	mech  sasl.Mechanism // nil without WithSASL

	mu      sync.Mutex
	cluster *kfake.Cluster // nil while stopped
}

// BrokerOption configures NewBroker.
type BrokerOption func(*brokerConfig)

type brokerConfig struct {
	brokers   int
	dataDir   string
	sasl      *saslUser
	topics    []kfake.Opt
	kfakeOpts []kfake.Opt
}

type saslUser struct{ mechanism, user, pass string }

// WithBrokers sets how many brokers the cluster has, overriding the default
// of 1.
func WithBrokers(n int) BrokerOption {
	return func(c *brokerConfig) { c.brokers = n }
}

// WithDataDir persists the cluster's state in dir, so that Stop and Start
// (or Restart) bring back its topics, records and committed offsets.
func WithDataDir(dir string) BrokerOption {
	return func(c *brokerConfig) { c.dataDir = dir }
}

// WithSASL requires SASL authentication and makes user, with password pass,
// a superuser; mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
// The broker's Client and helpers authenticate as that user.
//
// With PLAIN, a login with a wrong password is answered as Kafka and Redpanda
// answer it, with SASL_AUTHENTICATION_FAILED; kfake alone would close the
// connection, which a client cannot tell from a network failure. SCRAM
// logins keep kfake's behaviour.
func WithSASL(mechanism, user, pass string) BrokerOption {
	return func(c *brokerConfig) { c.sasl = &saslUser{mechanism, user, pass} }
}

// WithTopics creates the named topics, each with the given number of
// partitions, when the cluster first starts. It may be given more than once.
func WithTopics(partitions int32, names ...string) BrokerOption {
	return func(c *brokerConfig) { c.topics = append(c.topics, kfake.SeedTopics(partitions, names...)) }
}

// WithKfakeOpts passes options straight to kfake.NewCluster, after the ones
// the other options make.
func WithKfakeOpts(opts ...kfake.Opt) BrokerOption {
	return func(c *brokerConfig) { c.kfakeOpts = append(c.kfakeOpts, opts...) }
}

// NewBroker starts a kfake cluster on ephemeral 127.0.0.1 ports and closes
// it when the test ends.
func NewBroker(t testing.TB, opts ...BrokerOption) *Broker {
	t.Helper()
	b := &Broker{cfg: brokerConfig{brokers: 1}}
	for _, opt := range opts {
		opt(&b.cfg)
	}
	if u := b.cfg.sasl; u != nil {
		switch u.mechanism {
		case "PLAIN":
			b.mech = plain.Auth{User: u.user, Pass: u.pass}.AsMechanism()
		case "SCRAM-SHA-256":
			b.mech = scram.Auth{User: u.user, Pass: u.pass}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			b.mech = scram.Auth{User: u.user, Pass: u.pass}.AsSha512Mechanism()
		default:
			t.Fatalf("testenv: unknown SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", u.mechanism)
		}
	}
	c, err := kfake.NewCluster(b.kfakeOpts()...)
	if err != nil {
		t.Fatalf("testenv: start kfake cluster: %v", err)
	}
	b.cluster = c
	b.answerFailedLogins(c)
	t.Cleanup(b.close)
	b.seeds = c.ListenAddrs()
	for _, addr := range b.seeds {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("testenv: kfake listen address %q: %v", addr, err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			t.Fatalf("testenv: kfake listen address %q: %v", addr, err)
		}
		b.ports = append(b.ports, p)
	}
	return b
}

// kfakeOpts turns the configuration into kfake options; after the first
// start they pin the ports so that clients find the cluster again.
func (b *Broker) kfakeOpts() []kfake.Opt {
	opts := []kfake.Opt{kfake.NumBrokers(b.cfg.brokers)}
	if b.cfg.dataDir != "" {
		opts = append(opts, kfake.DataDir(b.cfg.dataDir))
	}
	if u := b.cfg.sasl; u != nil {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(u.mechanism, u.user, u.pass))
	}
	opts = append(opts, b.cfg.topics...)
	opts = append(opts, b.cfg.kfakeOpts...)
	if len(b.ports) > 0 {
		opts = append(opts, kfake.Ports(b.ports...))
	}
	return opts
}

// close shuts the cluster down if it is running.
func (b *Broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		b.cluster.Close()
		b.cluster = nil
	}
}

// Seeds returns the host:port of every broker; they stay the same across
// restarts.
func (b *Broker) Seeds() []string { return append([]string(nil), b.seeds...) }

// SeedList returns Seeds joined with commas, as a config file wants them.
func (b *Broker) SeedList() string { return strings.Join(b.seeds, ",") }

// Cluster returns the running kfake cluster, for control functions and
// fault injection; it is nil while the broker is stopped and a new value
// after each Start.
func (b *Broker) Cluster() *kfake.Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cluster
}

// Stop shuts the cluster down, saving its state when it has a data dir.
// Clients see the brokers go away until Start.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster == nil {
		t.Fatal("testenv: Broker.Stop: the broker is not running")
	}
	b.cluster.Close()
	b.cluster = nil
}

// Start brings a stopped cluster back on the same ports with the state
// saved in its data dir, so existing clients reconnect to it. It needs
// WithDataDir: without it the cluster would come back empty.
func (b *Broker) Start(t testing.TB) {
	t.Helper()
	if b.cfg.dataDir == "" {
		t.Fatal("testenv: Broker.Start needs WithDataDir, or the restarted broker would come back empty")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cluster != nil {
		t.Fatal("testenv: Broker.Start: the broker is already running")
	}
	c, err := kfake.NewCluster(b.kfakeOpts()...)
	if err != nil {
		t.Fatalf("testenv: restart kfake cluster on %v: %v", b.seeds, err)
	}
	b.cluster = c
	b.answerFailedLogins(c)
}

// answerFailedLogins makes c reject a PLAIN login with a wrong password with
// SASL_AUTHENTICATION_FAILED, as real brokers do.
func (b *Broker) answerFailedLogins(c *kfake.Cluster) {
	u := b.cfg.sasl
	if u == nil || u.mechanism != "PLAIN" {
		return
	}
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		auth := req.(*kmsg.SASLAuthenticateRequest)
		fields := bytes.Split(auth.SASLAuthBytes, []byte{0})
		if len(fields) != 3 || (string(fields[1]) == u.user && string(fields[2]) == u.pass) {
			return nil, nil, false
		}
		resp := auth.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		msg := "Authentication failed: invalid credentials"
		resp.ErrorMessage = &msg
		return resp, nil, true
	})
}

// Restart stops the cluster and starts it again on the same ports with the
// same data. It needs WithDataDir.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	b.Stop(t)
	b.Start(t)
}

// newClient makes a client seeded with the brokers and authenticated when
// SASL is configured; opts come last and may override the defaults.
func (b *Broker) newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	all := []kgo.Opt{kgo.SeedBrokers(b.seeds...)}
	if b.mech != nil {
		all = append(all, kgo.SASL(b.mech))
	}
	cl, err := kgo.NewClient(append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("new kafka client: %w", err)
	}
	return cl, nil
}

// newAdmin makes an admin client; closing it closes its kgo client.
func (b *Broker) newAdmin() (*kadm.Client, error) {
	cl, err := b.newClient()
	if err != nil {
		return nil, err
	}
	return kadm.NewClient(cl), nil
}

// Client returns a client for this broker, with the SASL credentials when
// configured, closed when the test ends.
func (b *Broker) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := b.newClient(opts...)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Admin returns an admin client for this broker, closed when the test ends.
func (b *Broker) Admin(t testing.TB) *kadm.Client {
	t.Helper()
	return kadm.NewClient(b.Client(t))
}

// CreateTopic creates topic with the given number of partitions and
// replication factor 1.
func (b *Broker) CreateTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	adm, err := b.newAdmin()
	if err != nil {
		t.Fatalf("testenv: create topic %s: %v", name, err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
	defer cancel()
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, name); err != nil {
		t.Fatalf("testenv: create topic %s with %d partitions: %v", name, partitions, err)
	}
}

// Produce writes records to topic, setting their Topic field, and waits
// until all are acknowledged.
func (b *Broker) Produce(t testing.TB, topic string, records ...*kgo.Record) {
	t.Helper()
	cl, err := b.newClient()
	if err != nil {
		t.Fatalf("testenv: produce to %s: %v", topic, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
	defer cancel()
	for _, r := range records {
		r.Topic = topic
	}
	if err := cl.ProduceSync(ctx, records...).FirstErr(); err != nil {
		t.Fatalf("testenv: produce %d records to %s: %v", len(records), topic, err)
	}
}

// ProduceN writes the n records fn(0) … fn(n-1) to topic and waits until
// all are acknowledged. Records are sent asynchronously and batched, so
// tens of thousands take well under a second.
func (b *Broker) ProduceN(t testing.TB, topic string, n int, fn func(i int) *kgo.Record) {
	t.Helper()
	cl, err := b.newClient()
	if err != nil {
		t.Fatalf("testenv: produce to %s: %v", topic, err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
	)
	for i := range n {
		r := fn(i)
		r.Topic = topic
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if firstErr == nil {
				firstErr = fmt.Errorf("record %d: %w", i, err)
			}
		})
	}
	err = cl.Flush(ctx)
	mu.Lock()
	defer mu.Unlock()
	if err := errors.Join(firstErr, err); err != nil {
		t.Fatalf("testenv: produce %d records to %s: %v", n, topic, err)
	}
}

// ConsumeAll reads topic from the start of every partition up to the end
// offsets it has when called, without a consumer group, and returns the
// records ordered by partition and offset. It reads uncommitted records
// too and leaves out transaction markers.
func (b *Broker) ConsumeAll(t testing.TB, topic string) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
	defer cancel()
	starts, ends, err := b.offsetRange(ctx, topic)
	if err != nil {
		t.Fatalf("testenv: consume %s: %v", topic, err)
	}
	from := make(map[int32]kgo.Offset)
	for p, end := range ends {
		if end > starts[p] {
			from[p] = kgo.NewOffset().At(starts[p])
		}
	}
	if len(from) == 0 {
		return nil
	}
	// Keeping control records makes every offset visible, so reaching
	// end-1 proves a partition was read to its end even when it ends with
	// a transaction marker.
	cl, err := b.newClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		t.Fatalf("testenv: consume %s: %v", topic, err)
	}
	defer cl.Close()
	var records []*kgo.Record
	for len(from) > 0 {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("testenv: consume %s: after %d records, partitions %v not read to their end offsets %v within %v",
				topic, len(records), sortedKeys(from), ends, kafkaTimeout)
		}
		if err := fetches.Err(); err != nil {
			t.Fatalf("testenv: consume %s: %v", topic, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end := ends[r.Partition]
			if r.Offset >= end {
				return
			}
			if r.Offset == end-1 {
				delete(from, r.Partition)
			}
			if !r.Attrs.IsControl() {
				records = append(records, r)
			}
		})
	}
	sort.SliceStable(records, func(i, j int) bool {
		if records[i].Partition != records[j].Partition {
			return records[i].Partition < records[j].Partition
		}
		return records[i].Offset < records[j].Offset
	})
	return records
}

// offsetRange lists the start and end offsets of every partition of topic.
func (b *Broker) offsetRange(ctx context.Context, topic string) (starts, ends map[int32]int64, err error) {
	adm, err := b.newAdmin()
	if err != nil {
		return nil, nil, err
	}
	defer adm.Close()
	listed, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets: %w", err)
	}
	starts = offsetsOf(listed, topic)
	if listed, err = adm.ListEndOffsets(ctx, topic); err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets: %w", err)
	}
	return starts, offsetsOf(listed, topic), nil
}

// offsetsOf maps each partition of topic to its listed offset.
func offsetsOf(listed kadm.ListedOffsets, topic string) map[int32]int64 {
	offsets := make(map[int32]int64, len(listed[topic]))
	for p, o := range listed[topic] {
		offsets[p] = o.Offset
	}
	return offsets
}

// sortedKeys returns the partitions of m in order, for messages.
func sortedKeys[V any](m map[int32]V) []int32 {
	keys := make([]int32, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}

// EndOffsets returns the end offset (high watermark) of every partition of
// topic; a missing topic fails the test.
func (b *Broker) EndOffsets(t testing.TB, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
	defer cancel()
	_, ends, err := b.offsetRange(ctx, topic)
	if err != nil {
		t.Fatalf("testenv: end offsets of %s: %v", topic, err)
	}
	return ends
}

// CommittedOffsets returns the offsets group has committed for the
// partitions of topic; partitions without a commit are absent, and a group
// that does not exist yet has none.
func (b *Broker) CommittedOffsets(t testing.TB, group, topic string) map[int32]int64 {
	t.Helper()
	adm, err := b.newAdmin()
	if err != nil {
		t.Fatalf("testenv: committed offsets of %s on %s: %v", group, topic, err)
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), kafkaTimeout)
	defer cancel()
	resps, err := adm.FetchOffsetsForTopics(ctx, group, topic)
	if err == nil {
		err = resps.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{}
	}
	if err != nil {
		t.Fatalf("testenv: committed offsets of %s on %s: %v", group, topic, err)
	}
	offsets := make(map[int32]int64)
	for p, o := range resps[topic] {
		if o.At >= 0 {
			offsets[p] = o.At
		}
	}
	return offsets
}

// WaitForCommit waits until group has committed, on every partition of
// topic, the end offset the partition has when WaitForCommit is called. It
// fails the test after timeout; explain, when not nil, adds context to the
// failure, such as a process's output.
func (b *Broker) WaitForCommit(t testing.TB, group, topic string, timeout time.Duration, explain func() string) {
	t.Helper()
	end := b.EndOffsets(t, topic)
	deadline := time.Now().Add(timeout)
	for {
		committed := b.CommittedOffsets(t, group, topic)
		caughtUp := true
		for p, e := range end {
			caughtUp = caughtUp && committed[p] == e
		}
		if caughtUp {
			return
		}
		if time.Now().After(deadline) {
			detail := ""
			if explain != nil {
				detail = "\n" + explain()
			}
			t.Fatalf("testenv: group %s committed %v on %s within %v, not the end offsets %v%s", group, committed, topic, timeout, end, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
