package redpanda

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

// createTopic creates a one-partition topic with the given
// max.message.bytes, or the broker's default when limit is 0.
func createTopic(t *testing.T, broker *testenv.Broker, name string, limit int) {
	t.Helper()
	var configs map[string]*string
	if limit > 0 {
		v := strconv.Itoa(limit)
		configs = map[string]*string{"max.message.bytes": &v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := broker.Admin(t).CreateTopic(ctx, 1, 1, configs, name)
	require.NoError(t, err)
	require.NoError(t, resp.Err)
}

// A message too large for its topic is dead-lettered; the producer's limit
// follows each topic's max.message.bytes, so a dead letter under the
// dead-letter topic's limit is written whole even above franz-go's default
// of 1,000,012 bytes, and one above it is written truncated, with headers
// that say so and name the original. The partition keeps flowing.
func TestOversizedDeadLettersAreTruncatedAndThePartitionMovesOn(t *testing.T) {
	const outLimit = 100_000
	for _, c := range []struct {
		name      string
		size      int
		dlqLimit  int // 0: the broker's default, 1,048,588 on kfake
		truncated bool
	}{
		{"a 1.04 MB dead letter under the topic's default limit is written whole", 1_040_000, 0, false},
		{"a 300 kB dead letter over a 100 kB topic limit is truncated", 300_000, outLimit, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			broker := testenv.NewBroker(t)
			createTopic(t, broker, "in", 0)
			createTopic(t, broker, "out", outLimit)
			createTopic(t, broker, "out.dlq", c.dlqLimit)
			big := bytes.Repeat([]byte("x"), c.size)
			producer := broker.Client(t, kgo.ProducerBatchMaxBytes(2<<20))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			require.NoError(t, producer.ProduceSync(ctx,
				&kgo.Record{Topic: "in", Value: []byte("before")},
				&kgo.Record{Topic: "in", Value: big},
				&kgo.Record{Topic: "in", Value: []byte("after")},
			).FirstErr())

			proc := runQiflow(t, fmt.Sprintf(`
input:
  redpanda:
    seed_brokers: [ %[1]q ]
    topics: [ in ]
    consumer_group: g
    commit_period: 100ms
output:
  redpanda:
    seed_brokers: [ %[1]q ]
    topic: out
    dead_letter:
      redpanda:
        seed_brokers: [ %[1]q ]
        topic: out.dlq
        metadata:
          include_prefixes: [ "qiflow-" ]
`, broker.SeedList()))
			broker.WaitForCommit(t, "g", "in", 30*time.Second, proc.Output)
			require.NoError(t, proc.Signal(syscall.SIGTERM))
			waitExit(t, proc, "SIGTERM", time.Now(), 10*time.Second)

			var out []string
			for _, r := range broker.ConsumeAll(t, "out") {
				out = append(out, string(r.Value))
			}
			assert.Equal(t, []string{"before", "after"}, out, "the partition keeps flowing past the large message")
			letters := broker.ConsumeAll(t, "out.dlq")
			require.Len(t, letters, 1)
			h := headers(letters[0].Headers)
			assert.Equal(t, "BUSINESS", h[result.HeaderErrorCategory])
			assert.Equal(t, "MESSAGE_TOO_LARGE", h[result.HeaderErrorCode])
			assert.Contains(t, h[result.HeaderError], "does not fit topic out, which takes at most 100000")
			assert.Equal(t, "in", h[result.HeaderSourceTopic])
			assert.Equal(t, "0", h[result.HeaderSourcePartition])
			assert.Equal(t, "1", h[result.HeaderSourceOffset], "the dead letter names the original")
			size := len(letters[0].Value)
			if c.truncated {
				assert.Equal(t, strconv.Itoa(c.size), h[HeaderTruncated], "the original size")
				assert.Less(t, size, c.dlqLimit)
				assert.Greater(t, size, c.dlqLimit/2, "the body is cut, not dropped, when a cut fits")
				assert.True(t, bytes.HasPrefix(big, letters[0].Value))
			} else {
				assert.NotContains(t, h, HeaderTruncated)
				assert.Equal(t, big, letters[0].Value, "written whole")
			}
			assert.NotContains(t, proc.Output(), "Retrying", "nothing waits for the large record")
			assert.Equal(t, c.truncated, strings.Contains(proc.Output(), "Truncated a dead letter for out.dlq"), "a truncation is logged")
			t.Logf("a %d-byte message: dead letter of %d bytes, truncated=%q", c.size, size, h[HeaderTruncated])
		})
	}
}
