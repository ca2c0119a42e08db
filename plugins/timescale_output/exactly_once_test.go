package timescale_output

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
)

// logDatabase returns a fresh database with the exactly-once example's
// table, crypto_prices_log: no key.
func logDatabase(t testing.TB) string {
	return databaseWith(t, "../../pipelines/examples/prices_exactly_once.schema.yaml")
}

// exactlyOnceOutput connects an exactly-once output for group, with its
// dead letters on the broker's crypto-prices.dlq.
func exactlyOnceOutput(t *testing.T, dsn string, broker *testenv.Broker, group string) *output {
	t.Helper()
	o := newOutput(t, fmt.Sprintf(`
dsn: %q
table: crypto_prices_log
format: price
exactly_once: true
max_in_flight: 1
dead_letter:
  redpanda:
    seed_brokers: [ %q ]
    topic: crypto-prices.dlq
    metadata: { include_prefixes: [ "qiflow-" ] }
`, dsn, broker.SeedList()))
	o.link.SetGroup(group)
	return o
}

// logged is the i-th message of partition 0 at offset i; the same i gives
// the same message, so a re-send at another offset is an exact copy.
func logged(i, offset int) *service.Message {
	m := price(fmt.Sprintf("coin%d", i%7), i, `"1.5"`)
	m.MetaSetMut("kafka_partition", int64(0))
	m.MetaSetMut("kafka_offset", int64(offset))
	return m
}

func loggedRange(from, to int) service.MessageBatch {
	var b service.MessageBatch
	for off := from; off < to; off++ {
		b = append(b, logged(off, off))
	}
	return b
}

func nextOffset(t *testing.T, dsn, group string) string {
	t.Helper()
	got := queryStrings(t, dsn, "SELECT next_offset::text FROM qiflow_offsets WHERE consumer_group = $1 AND topic = 'crypto-prices' AND partition = 0", group)
	if len(got) == 0 {
		return ""
	}
	return got[0]
}

func TestExactlyOnceWritesEachOffsetOnceThroughReplaysAndOverlaps(t *testing.T) {
	dsn := logDatabase(t)
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "crypto-prices.dlq"))
	o := exactlyOnceOutput(t, dsn, broker, "g")
	ctx := context.Background()

	require.NoError(t, o.WriteBatch(ctx, loggedRange(0, 100)))
	assert.Equal(t, 100, count(t, dsn, "crypto_prices_log"))
	assert.Equal(t, "100", nextOffset(t, dsn, "g"))

	require.NoError(t, o.WriteBatch(ctx, loggedRange(0, 100)), "a replay of a batch written is acknowledged")
	assert.Equal(t, 100, count(t, dsn, "crypto_prices_log"), "and writes nothing")

	require.NoError(t, o.WriteBatch(ctx, loggedRange(50, 150)), "an overlapping batch writes its new part")
	assert.Equal(t, 150, count(t, dsn, "crypto_prices_log"))
	assert.Equal(t, "150", nextOffset(t, dsn, "g"))

	// Exact re-sends are records of their own: two identical messages at
	// two offsets are two rows.
	resend := service.MessageBatch{logged(3, 150), logged(3, 151)}
	require.NoError(t, o.WriteBatch(ctx, resend))
	assert.Equal(t, []string{"3"}, queryStrings(t, dsn,
		"SELECT count(*)::text FROM crypto_prices_log WHERE coin_id = 'coin3' AND last_updated = to_timestamp($1::double precision / 1000)",
		fmt.Sprint(baseMillis+3000)), "message 3 once at offset 3, and twice re-sent")

	err := o.WriteBatch(ctx, loggedRange(160, 170))
	var gap *errGap
	require.ErrorAs(t, err, &gap, "a batch after a gap is refused, to be replayed after what it waits for")
	assert.Equal(t, int64(152), gap.next)
	assert.Equal(t, 152, count(t, dsn, "crypto_prices_log"))
	assert.Nil(t, o.scope.Halted(), "one refusal does not stop the stream")

	require.NoError(t, o.WriteBatch(ctx, loggedRange(152, 170)), "the messages it waited for, and then it, are written")
	assert.Equal(t, 170, count(t, dsn, "crypto_prices_log"))
	assert.Equal(t, "170", nextOffset(t, dsn, "g"))
	assert.Empty(t, broker.ConsumeAll(t, "crypto-prices.dlq"))
}

func TestExactlyOnceTakesBatchesInAnyOrderButNeverWithAHole(t *testing.T) {
	dsn := logDatabase(t)
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "crypto-prices.dlq"))
	o := exactlyOnceOutput(t, dsn, broker, "g")
	ctx := context.Background()
	var gap *errGap

	// The input started the partition at 0; a batch that overtook the
	// first (processor threads) is refused, not taken as the start.
	o.link.Started("crypto-prices", 0, 0)
	require.ErrorAs(t, o.WriteBatch(ctx, loggedRange(100, 200)), &gap)
	assert.Equal(t, int64(0), gap.next)
	require.NoError(t, o.WriteBatch(ctx, loggedRange(0, 100)))
	require.NoError(t, o.WriteBatch(ctx, loggedRange(100, 200)), "its replay, after the first, is written")
	assert.Equal(t, 200, count(t, dsn, "crypto_prices_log"))

	// Two input batches swapped inside one output batch are fine…
	swapped := append(loggedRange(250, 300), loggedRange(200, 250)...)
	require.NoError(t, o.WriteBatch(ctx, swapped))
	assert.Equal(t, "300", nextOffset(t, dsn, "g"))
	// …but a batch that lacks some of its offsets is refused.
	holed := append(loggedRange(300, 320), loggedRange(330, 350)...)
	require.ErrorAs(t, o.WriteBatch(ctx, holed), &gap)
	assert.Equal(t, 300, count(t, dsn, "crypto_prices_log"))
	assert.Equal(t, "300", nextOffset(t, dsn, "g"))
}

func TestExactlyOnceDeadLettersAdvanceTheOffsetInTheSameStep(t *testing.T) {
	dsn := logDatabase(t)
	exec(t, dsn, `ALTER TABLE crypto_prices_log ADD CONSTRAINT no_banned_source CHECK (source <> 'banned')`)
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "crypto-prices.dlq"))
	o := exactlyOnceOutput(t, dsn, broker, "g")
	ctx := context.Background()

	batch := loggedRange(0, 20)
	batch[4] = service.NewMessage([]byte(`{"coinId":"x","usdPrice":-1}`)) // invalid: decoder
	batch[4].MetaSetMut("kafka_topic", "crypto-prices")
	batch[4].MetaSetMut("kafka_partition", int64(0))
	batch[4].MetaSetMut("kafka_offset", int64(4))
	banned := price("coinB", 1000, `"2"`, `"source":"banned"`) // invalid: the database's CHECK
	banned.MetaSetMut("kafka_partition", int64(0))
	banned.MetaSetMut("kafka_offset", int64(11))
	batch[11] = banned
	require.NoError(t, o.WriteBatch(ctx, batch))
	assert.Equal(t, 18, count(t, dsn, "crypto_prices_log"))
	assert.Equal(t, "20", nextOffset(t, dsn, "g"), "dead letters move the offset on")
	letters := broker.ConsumeAll(t, "crypto-prices.dlq")
	require.Len(t, letters, 2)

	require.NoError(t, o.WriteBatch(ctx, batch), "a replay")
	assert.Len(t, broker.ConsumeAll(t, "crypto-prices.dlq"), 2, "dead-letters nothing again")
	assert.Equal(t, 18, count(t, dsn, "crypto_prices_log"))
}

func TestAStaleWriterWritesNothingOnceItsPartitionMovedOn(t *testing.T) {
	dsn := logDatabase(t)
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "crypto-prices.dlq"))
	ctx := context.Background()
	zombie := exactlyOnceOutput(t, dsn, broker, "g")
	owner := exactlyOnceOutput(t, dsn, broker, "g")
	require.NoError(t, owner.WriteBatch(ctx, loggedRange(0, 10)))

	// Both hold the batch from offset 10 (the zombie from before its
	// session expired, the owner since it was assigned the partition). A
	// lock on the offsets row holds both writes until both are waiting.
	hold, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer hold.Close(ctx)
	tx, err := hold.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "SELECT * FROM qiflow_offsets FOR UPDATE")
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = zombie.WriteBatch(ctx, loggedRange(10, 60)) })
	time.Sleep(200 * time.Millisecond)
	wg.Go(func() { errs[1] = owner.WriteBatch(ctx, loggedRange(10, 110)) })
	require.Eventually(t, func() bool {
		return queryStrings(t, dsn, "SELECT count(DISTINCT pid)::text FROM pg_locks WHERE NOT granted")[0] == "2"
	}, 10*time.Second, 20*time.Millisecond, "both writers wait for the offsets row")
	require.NoError(t, tx.Rollback(ctx))
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])

	assert.Equal(t, 110, count(t, dsn, "crypto_prices_log"), "every offset once, whichever wrote first")
	assert.Equal(t, "110", nextOffset(t, dsn, "g"))
	assert.Equal(t, []string{"110"}, queryStrings(t, dsn, `SELECT count(*)::text FROM (SELECT DISTINCT coin_id, last_updated FROM crypto_prices_log) d`))

	// Released after the group moved on, the stale writer's old batch
	// writes nothing and is acknowledged.
	require.NoError(t, zombie.WriteBatch(ctx, loggedRange(10, 60)))
	assert.Equal(t, 110, count(t, dsn, "crypto_prices_log"))
}

func TestExactlyOnceNeedsOneBatchInFlightAndADeadLetterOutput(t *testing.T) {
	for _, tt := range []struct{ output, want string }{
		{"max_in_flight: 4\n    dead_letter: { drop: {} }", "exactly_once needs max_in_flight: 1"},
		{"max_in_flight: 1", "exactly_once needs a dead_letter output"},
	} {
		err := service.NewEnvironment().NewStreamBuilder().SetYAML(`
input:
  generate: { mapping: 'root = {}', count: 1 }
output:
  timescale:
    dsn: postgres://localhost/x
    table: t
    format: price
    exactly_once: true
    ` + tt.output + "\n")
		require.Error(t, err)
		assert.Contains(t, err.Error(), tt.want)
	}
}

func TestDirectCompressWritesEveryRowIntoTheColumnstore(t *testing.T) {
	dsn := logDatabase(t)
	testenv.RequireTimescale(t, dsn)
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "crypto-prices.dlq"))
	o := newOutput(t, fmt.Sprintf(`
dsn: %q
table: crypto_prices_log
format: price
exactly_once: true
direct_compress: true
max_in_flight: 1
dead_letter:
  redpanda:
    seed_brokers: [ %q ]
    topic: crypto-prices.dlq
`, dsn, broker.SeedList()))
	o.link.SetGroup("g")
	require.NoError(t, o.WriteBatch(context.Background(), loggedRange(0, 3000)))
	require.NoError(t, o.WriteBatch(context.Background(), loggedRange(0, 3000)), "a replay")

	assert.Equal(t, 3000, count(t, dsn, "crypto_prices_log"))
	assert.Equal(t, "3000", nextOffset(t, dsn, "g"))
	assert.Equal(t, []string{"true"}, queryStrings(t, dsn,
		"SELECT bool_and(is_compressed)::text FROM timescaledb_information.chunks WHERE hypertable_name = 'crypto_prices_log'"),
		"the rows went straight into compressed chunks")
}
