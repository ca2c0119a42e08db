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
	require.Len(t, first, 6)
	for _, o := range first {
		assert.Equal(t, outcomeCreated, o.Outcome, o.Topic)
		assert.Contains(t, o.Details[0], "replication 1", "replication is capped at the one broker")
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
	assert.Contains(t, prices.Details, "partitions: 3, spec 12")
	assert.Equal(t, outcomeCreated, byTopic["crypto-ohlcv"].Outcome, "the other topics are still created")

	details, err := broker.Admin(t).ListTopics(context.Background(), "crypto-prices")
	require.NoError(t, err)
	assert.Len(t, details["crypto-prices"].Partitions, 3, "apply does not change an existing topic")

	text, code := runTopics(t, "apply", "-f", shippedTopics, "--brokers", broker.SeedList())
	assert.Equal(t, exitDiffers, code)
	assert.Contains(t, text, "crypto-prices")
	assert.Contains(t, text, "differs: partitions: 3, spec 12")
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
	require.Len(t, status, 6)
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
