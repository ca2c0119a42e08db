package exchangerouter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/testenv"
)

const shippedTopics = "../../pipelines/topics.yaml"

// runTopics runs `qiflow topics ARGS...` in process and returns its output
// and exit code.
func runTopics(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "qiflow", Commands: []*cli.Command{CLICommand()}, Writer: &out, ErrWriter: &out,
		ExitErrHandler: func(*cli.Context, error) {}}
	err := app.RunContext(context.Background(), append([]string{"qiflow", "topics"}, args...))
	code := 0
	var exit cli.ExitCoder
	if errors.As(err, &exit) {
		code = exit.ExitCode()
		out.WriteString(err.Error())
	} else if err != nil {
		code = 1
		out.WriteString(err.Error())
	}
	return out.String(), code
}

func applyJSON(t *testing.T, broker *testenv.Broker, file string) ([]topicOutcome, int) {
	t.Helper()
	out, code := runTopics(t, "apply", "-f", file, "--brokers", broker.SeedList(), "--json")
	var outcomes []topicOutcome
	require.NoError(t, json.NewDecoder(bytes.NewReader([]byte(out))).Decode(&outcomes), out)
	return outcomes, code
}

func TestApplyCreatesTheShippedTopicsAndASecondRunChangesNothing(t *testing.T) {
	broker := testenv.NewBroker(t)
	first, code := applyJSON(t, broker, shippedTopics)
	require.Equal(t, 0, code)
	require.Len(t, first, 8)
	for _, o := range first {
		assert.Equal(t, outcomeCreated, o.Outcome, o.Topic)
		assert.Contains(t, o.Details[0], "replication 1", "replication is capped at the one broker")
		assert.Equal(t, []string{"replication capped at 1: the spec asks 3 and the cluster has 1 broker(s)"}, o.Warnings, o.Topic)
	}

	details, err := broker.Admin(t).ListTopics(context.Background())
	require.NoError(t, err)
	want := map[string]int{"crypto-prices": 12, "crypto-ohlcv": 24, "crypto-analytics": 6, "crypto-prices.dlq": 1}
	for topic, n := range want {
		assert.Len(t, details[topic].Partitions, n, topic)
	}
	configs, err := describeConfigs(context.Background(), broker.Admin(t), details)
	require.NoError(t, err)
	assert.Equal(t, "lz4", configs["crypto-prices"]["compression.type"])
	assert.Equal(t, "604800000", configs["crypto-prices"]["retention.ms"])
	assert.Equal(t, "2592000000", configs["crypto-ohlcv"]["retention.ms"])
	assert.Equal(t, "7776000000", configs["crypto-analytics"]["retention.ms"])

	second, code := applyJSON(t, broker, shippedTopics)
	require.Equal(t, 0, code)
	for _, o := range second {
		assert.Equal(t, outcomeUnchanged, o.Outcome, "%s: %v", o.Topic, o.Details)
	}
}

func TestApplyReportsATopicThatDiffersWithoutChangingIt(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(3, "crypto-prices"))
	outcomes, code := applyJSON(t, broker, shippedTopics)
	assert.Equal(t, exitDiffers, code)
	byTopic := map[string]topicOutcome{}
	for _, o := range outcomes {
		byTopic[o.Topic] = o
	}
	prices := byTopic["crypto-prices"]
	assert.Equal(t, outcomeDiffers, prices.Outcome)
	assert.Contains(t, prices.Details, "partitions: 3, spec 12 (--allow-partition-increase raises them)")
	assert.Equal(t, outcomeCreated, byTopic["crypto-ohlcv"].Outcome, "the other topics are still created")

	details, err := broker.Admin(t).ListTopics(context.Background(), "crypto-prices")
	require.NoError(t, err)
	assert.Len(t, details["crypto-prices"].Partitions, 3, "apply does not change an existing topic")

	text, code := runTopics(t, "apply", "-f", shippedTopics, "--brokers", broker.SeedList())
	assert.Equal(t, exitDiffers, code)
	assert.Contains(t, text, "crypto-prices")
	assert.Contains(t, text, "differs: partitions: 3, spec 12 (")
}

func TestStatusShowsPartitionsConfigsOffsetsAndLag(t *testing.T) {
	broker := testenv.NewBroker(t)
	_, code := applyJSON(t, broker, shippedTopics)
	require.Equal(t, 0, code)
	producer := broker.Client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range 30 {
		rec := &kgo.Record{Topic: "crypto-analytics", Partition: int32(i % 6), Value: []byte("{}")}
		require.NoError(t, producer.ProduceSync(context.Background(), rec).FirstErr())
	}
	// A consumer group that has committed 10 of the 30 messages lags by 20.
	var committed kadm.Offsets
	committed.Add(kadm.Offset{Topic: "crypto-analytics", Partition: 0, At: 5, LeaderEpoch: -1})
	committed.Add(kadm.Offset{Topic: "crypto-analytics", Partition: 1, At: 5, LeaderEpoch: -1})
	resp, err := broker.Admin(t).CommitOffsets(context.Background(), "qiflow-analytics", committed)
	require.NoError(t, err)
	require.NoError(t, resp.Error())

	out, code := runTopics(t, "status", "-f", shippedTopics, "--brokers", broker.SeedList(), "--json")
	require.Equal(t, 0, code, out)
	var status []topicStatus
	require.NoError(t, json.Unmarshal([]byte(out), &status), out)
	require.Len(t, status, 8)
	var analytics topicStatus
	for _, s := range status {
		if s.Topic == "crypto-analytics" {
			analytics = s
		}
	}
	assert.Equal(t, 6, analytics.Partitions)
	assert.Equal(t, int64(30), analytics.Messages)
	assert.Equal(t, int64(5), analytics.EndOffsets[0])
	assert.Equal(t, "lz4", analytics.Configs["compression.type"])
	assert.Equal(t, "7776000000", analytics.Configs["retention.ms"])
	assert.Equal(t, int64(20), analytics.Lag["qiflow-analytics"])

	text, code := runTopics(t, "status", "--brokers", broker.SeedList())
	require.Equal(t, 0, code, text)
	assert.Contains(t, text, "crypto-analytics: 6 partitions, replication 1, 30 messages")
	assert.Contains(t, text, "group qiflow-analytics lag 20")
}

func TestBadTopicsFilesAreRejected(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown key":    "topics:\n  - name: a\n    partitions: 1\n    partitons: 2\n",
		"no name":        "topics:\n  - partitions: 1\n",
		"no partitions":  "topics:\n  - name: a\n",
		"duplicate":      "topics:\n  - { name: a, partitions: 1 }\n  - { name: a, partitions: 2 }\n",
		"empty":          "topics: []\n",
		"not yaml lists": "topics: a\n",
	}
	for name, body := range cases {
		path := filepath.Join(dir, name+".yaml")
		require.NoError(t, os.WriteFile(path, []byte(body), 0o600))
		_, err := loadTopics(path)
		assert.Error(t, err, name)
	}
	_, code := runTopics(t, "apply", "-f", filepath.Join(dir, "missing.yaml"), "--brokers", "127.0.0.1:1")
	assert.Equal(t, 1, code)
}

func TestApplySaysWhenItCapsReplication(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithBrokers(2))
	text, code := runTopics(t, "apply", "-f", shippedTopics, "--brokers", broker.SeedList())
	require.Equal(t, 0, code, text)
	assert.Contains(t, text, "crypto-prices            created: 12 partitions, replication 2\n  WARNING: replication capped at 2: the spec asks 3 and the cluster has 2 broker(s)")

	details, err := broker.Admin(t).ListTopics(context.Background(), "crypto-prices")
	require.NoError(t, err)
	assert.Equal(t, 2, replicationOf(details["crypto-prices"]))

	// A spec that asks no more than the cluster has is not capped.
	exact := filepath.Join(t.TempDir(), "topics.yaml")
	require.NoError(t, os.WriteFile(exact, []byte("topics:\n  - { name: two, partitions: 1, replication_factor: 2 }\n"), 0o600))
	outcomes, code := applyJSON(t, broker, exact)
	require.Equal(t, 0, code)
	assert.Empty(t, outcomes[0].Warnings)
}

func TestAllowPartitionIncreaseRaisesPartitionsAndNeverLowersThem(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(3, "crypto-prices"), testenv.WithTopics(30, "crypto-ohlcv"))
	partitions := func(topic string) int {
		details, err := broker.Admin(t).ListTopics(context.Background(), topic)
		require.NoError(t, err)
		return len(details[topic].Partitions)
	}
	// crypto-prices differs from the spec in its partitions only.
	_, err := broker.Admin(t).AlterTopicConfigs(context.Background(),
		[]kadm.AlterConfig{{Name: "compression.type", Value: kadm.StringPtr("lz4")}}, "crypto-prices")
	require.NoError(t, err)

	text, code := runTopics(t, "apply", "-f", shippedTopics, "--brokers", broker.SeedList())
	assert.Equal(t, exitDiffers, code)
	assert.Contains(t, text, "partitions: 3, spec 12 (--allow-partition-increase raises them)")
	assert.Equal(t, 3, partitions("crypto-prices"), "without the flag nothing changes")

	text, code = runTopics(t, "apply", "-f", shippedTopics, "--brokers", broker.SeedList(), "--allow-partition-increase")
	assert.Equal(t, exitDiffers, code, "crypto-ohlcv still has more partitions than its spec")
	assert.Contains(t, text, "crypto-prices            changed: partitions: 3 → 12\n")
	assert.Contains(t, text, "  WARNING: keyed placement changes")
	assert.Contains(t, text, "crypto-ohlcv             differs: partitions: 30, spec 24 (partitions can never be decreased")
	assert.Equal(t, 12, partitions("crypto-prices"))
	assert.Equal(t, 30, partitions("crypto-ohlcv"), "partitions are never lowered")

	outcomes, _ := applyJSON(t, broker, shippedTopics)
	for _, o := range outcomes {
		if o.Topic == "crypto-prices" {
			assert.Equal(t, outcomeUnchanged, o.Outcome, "a second run has nothing to raise: %v", o.Details)
		}
	}
}

func TestConfigValuesAreCheckedBeforeAnythingIsCreated(t *testing.T) {
	broker := testenv.NewBroker(t)
	bad := filepath.Join(t.TempDir(), "topics.yaml")
	require.NoError(t, os.WriteFile(bad, []byte(`topics:
  - name: crypto-prices
    partitions: 12
    configs:
      retention.ms: 7d
      compression.type: lz5
  - name: crypto-ohlcv
    partitions: 24
    configs:
      retention.msec: "1"
`), 0o600))
	text, code := runTopics(t, "apply", "-f", bad, "--brokers", broker.SeedList())
	assert.Equal(t, 1, code)
	assert.Contains(t, text, bad+`: topic crypto-prices: configs: retention.ms: "7d" is not valid: expected an integer number of milliseconds, at least -1 (-1: forever); 7d is "604800000"`)
	assert.Contains(t, text, bad+`: topic crypto-prices: configs: compression.type: "lz5" is not valid`)
	assert.Contains(t, text, bad+`: topic crypto-ohlcv: configs: unknown topic config "retention.msec"`)

	details, err := broker.Admin(t).ListTopics(context.Background())
	require.NoError(t, err)
	assert.Empty(t, details.Names(), "a file with a bad value creates no topic")
	assert.ErrorContains(t, LintTopicsFile(bad), "retention.ms")
}
