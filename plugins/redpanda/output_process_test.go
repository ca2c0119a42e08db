package redpanda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

// These tests run bin/qiflow as a user would: a config file, a kfake broker
// over TCP, signals, exit codes.

func TestMain(m *testing.M) { testenv.Main(m) }

// runQiflow starts `qiflow run` on config with the HTTP server off.
func runQiflow(t *testing.T, config string) *testenv.Process {
	t.Helper()
	file := filepath.Join(t.TempDir(), "pipeline.yaml")
	require.NoError(t, os.WriteFile(file, []byte(config), 0o600))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	return testenv.StartProcess(t, bin, nil, "run", "--set", "http.enabled=false", "--set", "logger.level=info", file)
}

// waitExit waits up to bound for p to exit, logs how long it took since
// from, and returns the exit code.
func waitExit(t *testing.T, p *testenv.Process, what string, from time.Time, bound time.Duration) int {
	t.Helper()
	code, err := p.Wait(time.Until(from.Add(bound)))
	require.NoError(t, err, "%s: output:\n%s", what, p.Output())
	t.Logf("%s: exited with code %d after %v (bound %v)", what, code, time.Since(from).Round(time.Millisecond), bound)
	return code
}

// feedConfig is pipelines/feed.yaml reduced to prices: count generated
// messages, routed for routerPartitions, then written by the redpanda
// output with the given extra fields.
func feedConfig(seeds string, count, routerPartitions int, outputExtra string) string {
	return fmt.Sprintf(`
input:
  market_data:
    coins: 20
    rate: unlimited
    count: %[2]d
    seed: 11
    kinds: [ price ]
    batch_size: 128
pipeline:
  threads: 1
  processors:
    - exchange_router:
        topic: crypto-prices
        partitions: %[3]d
output:
  switch:
    cases:
      - check: errored()
        output:
          redpanda:
            seed_brokers: [ %[1]q ]
            topic: ${! @qiflow_dead_letter_topic }
            metadata:
              include_prefixes: [ "qiflow-" ]
      - output:
          redpanda:
            seed_brokers: [ %[1]q ]
            topic: ${! @qiflow_topic }
            key: ${! @qiflow_key }
            partition: ${! @qiflow_partition }
            max_in_flight: 1
%[4]s`, seeds, count, routerPartitions, outputExtra)
}

// indent prefixes every line of s with n spaces.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n"+pad) + "\n"
}

// The router routes for 24 partitions, the topic has 12: half the messages
// name a partition that does not exist. Every message the output writes is
// written exactly once, with or without output batching; with a dead_letter
// output, the others are dead-lettered once each and the feed ends.
func TestOutputWritesEveryMessageOnceWhenPartitionsDoNotExist(t *testing.T) {
	const count = 800
	batching := `
batching:
  count: 128
  period: 5ms`
	deadLetter := `
dead_letter:
  redpanda:
    seed_brokers: [ %q ]
    topic: ${! @qiflow_dead_letter_topic }
    metadata:
      include_prefixes: [ "qiflow-" ]`
	for _, c := range []struct {
		name       string
		batching   bool
		deadLetter bool
	}{
		{"batching, dead_letter", true, true},
		{"no batching, dead_letter", false, true},
		{"batching, no dead_letter", true, false},
		{"no batching, no dead_letter", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			broker := testenv.NewBroker(t, testenv.WithTopics(12, "crypto-prices"), testenv.WithTopics(1, "crypto-prices.dlq"))
			extra := ""
			if c.batching {
				extra += indent(12, batching)
			}
			if c.deadLetter {
				extra += indent(12, fmt.Sprintf(deadLetter, broker.SeedList()))
			}
			proc := runQiflow(t, feedConfig(broker.SeedList(), count, 24, extra))

			if c.deadLetter {
				// The input ends after count messages; every one is written
				// or dead-lettered, so qiflow exits by itself.
				code := waitExit(t, proc, "feed of 800 messages", time.Now(), 60*time.Second)
				require.Equal(t, 0, code, "%s", proc.Output())
			} else {
				// The failed messages are replayed until the stop.
				proc.WaitForOutput(t, "does not exist", 60*time.Second)
				time.Sleep(3 * time.Second)
				require.NoError(t, proc.Signal(syscall.SIGTERM))
				waitExit(t, proc, "SIGTERM while replaying failed messages", time.Now(), 10*time.Second)
			}

			written := map[string]int{}
			duplicates := 0
			for _, r := range broker.ConsumeAll(t, "crypto-prices") {
				require.Less(t, r.Partition, int32(12))
				if written[string(r.Value)]++; written[string(r.Value)] > 1 {
					duplicates++
				}
			}
			letters := map[string]int{}
			for _, r := range broker.ConsumeAll(t, "crypto-prices.dlq") {
				letters[string(r.Value)]++
				h := headers(r.Headers)
				assert.Equal(t, "BUSINESS", h["qiflow-error-category"])
				assert.Equal(t, "invalid_partition", h["qiflow-error-code"])
				assert.Contains(t, h["qiflow-error"], "topic crypto-prices has 12 partitions")
			}
			t.Logf("%d distinct messages written, %d duplicates; %d dead letters", len(written), duplicates, len(letters))
			assert.Zero(t, duplicates, "no message is written twice")
			assert.NotEmpty(t, written)
			for v, n := range letters {
				assert.Equal(t, 1, n, "dead-lettered once: %s", v)
				assert.Zero(t, written[v], "a dead letter was not also written: %s", v)
			}
			if c.deadLetter {
				assert.Equal(t, count, len(written)+len(letters), "every message is written or dead-lettered")
			} else {
				assert.Empty(t, letters)
				assert.Contains(t, proc.Output(), "topic crypto-prices has 12 partitions", "the error says why")
			}
		})
	}
}

// headers maps each record header's key to its value.
func headers(hs []kgo.RecordHeader) map[string]string {
	m := make(map[string]string, len(hs))
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

// SIGTERM while the output's broker is unreachable: the stop interrupts the
// output's retries, qiflow exits within the bound, and what was not written
// is not committed, so the next run writes it.
func TestStopWithTheOutputsBrokerDownExitsPromptly(t *testing.T) {
	const bound = 3 * time.Second
	source := testenv.NewBroker(t, testenv.WithTopics(1, "in"))
	sink := testenv.NewBroker(t, testenv.WithDataDir(t.TempDir()), testenv.WithTopics(1, "out"))
	config := fmt.Sprintf(`
input:
  redpanda:
    seed_brokers: [ %q ]
    topics: [ in ]
    consumer_group: g
    commit_period: 100ms
output:
  redpanda:
    seed_brokers: [ %q ]
    topic: out
    timeout: 2s
`, source.SeedList(), sink.SeedList())
	proc := runQiflow(t, config)
	source.Produce(t, "in", &kgo.Record{Value: []byte("first")})
	source.WaitForCommit(t, "g", "in", 30*time.Second, proc.Output)
	sink.Stop(t)
	source.Produce(t, "in", &kgo.Record{Value: []byte("second")})
	time.Sleep(2 * time.Second) // the output holds "second", in flight to the broker that went away
	require.Equal(t, map[int32]int64{0: 1}, source.CommittedOffsets(t, "g", "in"))

	stopped := time.Now()
	require.NoError(t, proc.Signal(syscall.SIGTERM))
	code := waitExit(t, proc, "SIGTERM with the output's broker down", stopped, bound)
	assert.Equal(t, 0, code, "%s", proc.Output())
	assert.Equal(t, map[int32]int64{0: 1}, source.CommittedOffsets(t, "g", "in"), "the unwritten message is not committed")

	sink.Start(t)
	proc = runQiflow(t, config)
	source.WaitForCommit(t, "g", "in", 30*time.Second, proc.Output)
	require.NoError(t, proc.Signal(syscall.SIGTERM))
	waitExit(t, proc, "SIGTERM after the replay", time.Now(), 10*time.Second)
	var values []string
	for _, r := range sink.ConsumeAll(t, "out") {
		values = append(values, string(r.Value))
	}
	assert.Equal(t, []string{"first", "second"}, values, "the replay writes the message once")
}
