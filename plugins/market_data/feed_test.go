package marketdatainput_test

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	"github.com/qicore/qiflow/internal/testenv"
	_ "github.com/qicore/qiflow/plugins/exchange_router"
	_ "github.com/qicore/qiflow/plugins/redpanda"
)

// feedTopics are the topics of pipelines/feed.yaml and their partitions.
var feedTopics = map[string]int32{"crypto-prices": 12, "crypto-ohlcv": 24, "crypto-analytics": 6}

func feedBroker(t testing.TB) *testenv.Broker {
	broker := testenv.NewBroker(t)
	for topic, partitions := range feedTopics {
		broker.CreateTopic(t, topic, partitions)
		broker.CreateTopic(t, topic+".dlq", 1)
	}
	return broker
}

// runFeed runs pipelines/feed.yaml against broker with the input's rate
// line replaced by input, until the input ends, and returns how long the
// stream ran.
func runFeed(t testing.TB, broker *testenv.Broker, input string) time.Duration {
	t.Helper()
	raw, err := os.ReadFile("../../pipelines/feed.yaml")
	require.NoError(t, err)
	yaml := strings.Replace(string(raw), `    rate: "1000"`, input, 1)
	require.NotEqual(t, string(raw), yaml, "feed.yaml sets the rate")
	t.Setenv("REDPANDA_BROKERS", broker.SeedList())

	sb := service.NewStreamBuilder()
	require.NoError(t, sb.SetYAML(yaml))
	require.NoError(t, sb.SetLoggerYAML("level: warn"))
	stream, err := sb.Build()
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()
	require.NoError(t, stream.Run(ctx))
	return time.Since(start)
}

func TestShippedFeedLints(t *testing.T) {
	raw, err := os.ReadFile("../../pipelines/feed.yaml")
	require.NoError(t, err)
	lints, err := service.GlobalEnvironment().FullConfigSchema("", "").NewStreamConfigLinter().LintYAML(raw)
	require.NoError(t, err)
	assert.Empty(t, lints, "qiflow lint pipelines/feed.yaml finds nothing")
}

func TestFeedRoutesEveryMessageToItsTopicOrDeadLetters(t *testing.T) {
	const count = 20_000
	broker := feedBroker(t)
	runFeed(t, broker, "    rate: unlimited\n    count: 20000\n    seed: 7\n    bad_share: 0.02")

	total := 0
	for topic := range feedTopics {
		records := broker.ConsumeAll(t, topic)
		total += len(records)
		lastTime := map[string]string{}
		partitionOf := map[string]int32{}
		for _, r := range records {
			key := string(r.Key)
			require.NotEmpty(t, key, topic)
			if p, ok := partitionOf[key]; ok {
				require.Equal(t, p, r.Partition, "%s: %s stays in one partition", topic, key)
			}
			partitionOf[key] = r.Partition
			var m struct {
				Timestamp   string `json:"timestamp"`
				LastUpdated string `json:"lastUpdated"`
				Timeframe   string `json:"timeframe"`
			}
			if json.Unmarshal(r.Value, &m) != nil {
				continue // a deliberately bad message, for ingest to dead-letter
			}
			at := m.LastUpdated + m.Timestamp
			series := key + "/" + m.Timeframe
			assert.GreaterOrEqual(t, at, lastTime[series], "%s: %s arrives in order", topic, series)
			lastTime[series] = at
		}
		letters := broker.ConsumeAll(t, topic+".dlq")
		total += len(letters)
		for _, l := range letters {
			h := map[string]string{}
			for _, kv := range l.Headers {
				h[kv.Key] = string(kv.Value)
			}
			assert.Equal(t, "BUSINESS", h["qiflow-error-category"])
			assert.Contains(t, []string{"unknown_exchange", "invalid_json", "missing_exchange"}, h["qiflow-error-code"], "%v", h)
			assert.NotEmpty(t, h["qiflow-error"])
		}
		t.Logf("%s: %d records, %d dead letters", topic, len(records), len(letters))
	}
	assert.Equal(t, count, total, "every generated message is written once")
}

// BenchmarkFeed measures pipelines/feed.yaml end to end: 250,000 generated
// messages through exchange_router and the redpanda output into kfake.
func BenchmarkFeed(b *testing.B) {
	const count = 250_000
	var rate float64
	for b.Loop() {
		broker := feedBroker(b)
		elapsed := runFeed(b, broker, "    rate: unlimited\n    count: 250000\n    seed: 1")
		rate = count / elapsed.Seconds()
	}
	b.ReportMetric(rate, "msgs/s")
}

// The shipped feed in front of a crypto-prices topic with 6 partitions,
// where the router assumes 12: the prices for partitions 6–11 are
// dead-lettered once each, every other message is written once, and the
// feed ends.
func TestShippedFeedWritesOnceWhenTheTopicHasFewerPartitions(t *testing.T) {
	const count = 5_000
	broker := testenv.NewBroker(t)
	for topic, partitions := range feedTopics {
		if topic == "crypto-prices" {
			partitions = 6
		}
		broker.CreateTopic(t, topic, partitions)
		broker.CreateTopic(t, topic+".dlq", 1)
	}
	elapsed := runFeed(t, broker, "    rate: unlimited\n    count: 5000\n    seed: 3")

	written := map[string]int{}
	letters := map[string]int{}
	for topic := range feedTopics {
		for _, r := range broker.ConsumeAll(t, topic) {
			written[string(r.Value)]++
		}
		for _, r := range broker.ConsumeAll(t, topic+".dlq") {
			letters[string(r.Value)]++
			for _, h := range r.Headers {
				if h.Key == "qiflow-error-code" {
					assert.Equal(t, "invalid_partition", string(h.Value), topic)
				}
			}
		}
	}
	duplicates := 0
	for v, n := range written {
		duplicates += n - 1
		assert.Zero(t, letters[v], "written and dead-lettered: %s", v)
	}
	for _, n := range letters {
		duplicates += n - 1
	}
	t.Logf("%d messages in %v: %d written, %d dead-lettered, %d duplicates", count, elapsed.Round(time.Millisecond), len(written), len(letters), duplicates)
	assert.Zero(t, duplicates)
	assert.NotEmpty(t, letters, "the router names partitions the topic lacks")
	assert.Equal(t, count, len(written)+len(letters), "every message is written or dead-lettered")
}
