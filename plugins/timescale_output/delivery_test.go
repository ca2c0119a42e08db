package timescale_output

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

// Tests of the delivery promise under faults the database brings (issue 11):
// every message ends as exactly one row, one skip for a key already written,
// or one dead letter that says why; never retried forever, never lost.

// logLines collects the output's log lines, for tests that count retries.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Enabled(context.Context, slog.Level) bool { return true }
func (l *logLines) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, r.Message)
	return nil
}
func (l *logLines) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logLines) WithGroup(string) slog.Handler      { return l }

// matching returns the lines that contain s.
func (l *logLines) matching(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// newLoggedOutput is newOutput with the output's log lines collected.
func newLoggedOutput(t *testing.T, yaml string) (*output, *logLines) {
	t.Helper()
	result.ResetHalt()
	t.Cleanup(result.ResetHalt)
	conf, err := spec().ParseYAML(yaml, service.NewEnvironment())
	require.NoError(t, err)
	logs := &logLines{}
	res := service.MockResources(service.MockResourcesOptUseLogger(service.NewLoggerFromSlog(slog.New(logs))))
	o, err := newOutputFromConfig(conf, res)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, o.Connect(ctx))
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o, logs
}

// writeWithin is write, failing the test if the batch takes longer than d:
// a batch retried forever ends here instead of hanging the test.
func writeWithin(t *testing.T, d time.Duration, o *output, batch service.MessageBatch) map[int]error {
	t.Helper()
	index := batch.Index()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := o.WriteBatch(ctx, batch)
	require.NoError(t, ctx.Err(), "the batch did not complete within %v: %v", d, err)
	out := map[int]error{}
	if err == nil {
		return out
	}
	var batchErr *service.BatchError
	require.ErrorAs(t, err, &batchErr)
	batchErr.WalkMessagesIndexedBy(index, func(i int, _ *service.Message, err error) bool {
		if err != nil {
			out[i] = err
		}
		return true
	})
	return out
}

func TestTheNextDuplicateOfARowTheDatabaseRejectsIsWrittenInItsPlace(t *testing.T) {
	banned := `"source":"banned"`
	tests := []struct {
		conflict string
		batch    []string // usd prices of one key, in batch order; "bad" violates the CHECK
		want     string   // the stored price
		failed   []int    // the messages that fail, each with 23514
	}{
		{"do_nothing", []string{"bad", "2"}, "2.00000000", []int{0}},
		{"do_nothing", []string{"bad", "bad", "3", "4"}, "3.00000000", []int{0, 1}},
		{"do_nothing", []string{"1", "bad"}, "1.00000000", nil},
		// Last wins: when the last is rejected, the one before it is the last valid.
		{"do_update", []string{"1", "bad"}, "1.00000000", []int{1}},
		{"do_update", []string{"1", "2", "bad", "bad"}, "2.00000000", []int{2, 3}},
		{"do_update", []string{"bad", "2"}, "2.00000000", nil},
		// The later duplicates of a written row fail as duplicates; of a
		// rejected row, the next one is written.
		{"error", []string{"bad", "2", "3"}, "2.00000000", []int{0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.conflict+" "+strings.Join(tt.batch, ","), func(t *testing.T) {
			dsn := database(t)
			exec(t, dsn, `ALTER TABLE crypto_prices ADD CONSTRAINT no_banned_source CHECK (source <> 'banned')`)
			o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nconflict: %s\n", dsn, tt.conflict))
			var batch service.MessageBatch
			for _, usd := range tt.batch {
				if usd == "bad" {
					batch = append(batch, price("btc", 1, `"1"`, banned))
				} else {
					batch = append(batch, price("btc", 1, `"`+usd+`"`))
				}
			}
			// Another key in the batch, so the rejected row is found by isolation.
			batch = append(batch, price("eth", 1, `"7"`))
			failed := writeWithin(t, 30*time.Second, o, batch)

			assert.Equal(t, []string{tt.want}, queryStrings(t, dsn, "SELECT usd_price::text FROM crypto_prices WHERE coin_id = 'btc'"))
			assert.Equal(t, 2, count(t, dsn, "crypto_prices"))
			require.Len(t, failed, len(tt.failed), "%v", failed)
			for _, i := range tt.failed {
				require.Contains(t, failed, i)
				code := "23514"
				if tt.batch[i] != "bad" {
					code = "23505"
				}
				assert.Equal(t, code, result.Classify(failed[i]).Code, "message %d: %v", i, failed[i])
			}
		})
	}
}

func TestARejectedRowsValidDuplicateIsWrittenAndTheRejectedOneIsDeadLettered(t *testing.T) {
	dsn := database(t)
	exec(t, dsn, `ALTER TABLE crypto_prices ADD CONSTRAINT no_banned_source CHECK (source <> 'banned')`)
	broker := testenv.NewBroker(t, testenv.WithTopics(1, "crypto-prices.dlq"))
	o := newOutput(t, fmt.Sprintf(`
dsn: %q
table: crypto_prices
format: price
dead_letter:
  redpanda:
    seed_brokers: [ %q ]
    topic: crypto-prices.dlq
    metadata: { include_prefixes: [ "qiflow-" ] }
`, dsn, broker.SeedList()))
	bad, good := price("btc", 1, `"1"`, `"source":"banned"`), price("btc", 1, `"2"`)
	good.MetaSetMut("kafka_offset", "2")
	require.NoError(t, o.WriteBatch(context.Background(), service.MessageBatch{bad, good}))

	assert.Equal(t, []string{"2.00000000"}, queryStrings(t, dsn, "SELECT usd_price::text FROM crypto_prices"), "the valid duplicate is the row")
	letters := broker.ConsumeAll(t, "crypto-prices.dlq")
	require.Len(t, letters, 1, "the violating message is the one dead letter")
	headers := map[string]string{}
	for _, h := range letters[0].Headers {
		headers[h.Key] = string(h.Value)
	}
	assert.Equal(t, "23514", headers[result.HeaderErrorCode])
	assert.Equal(t, "1", headers[result.HeaderSourceOffset])
	assert.Equal(t, string(mustBytes(t, bad)), string(letters[0].Value))
}

func TestDoUpdateCompletesWhenKeysDifferOnlyInWhatTheColumnDoesNotStore(t *testing.T) {
	tests := []struct {
		name, keyType string
		keys          []string // JSON values of one key, as PostgreSQL stores them
		want          string   // the key as stored
	}{
		{"timestamptz keeps microseconds", "timestamptz",
			[]string{`"2026-11-26T10:00:00.0000001Z"`, `"2026-11-26T10:00:00.0000009Z"`}, "2026-11-26 10:00:00+00"},
		{"timestamp keeps the wall clock", "timestamp",
			[]string{`"2026-11-26T10:00:00+02:00"`, `"2026-11-26T10:00:00Z"`}, "2026-11-26 10:00:00"},
		{"char(n) ignores trailing blanks", "char(8)",
			[]string{`"abc"`, `"abc  "`}, "abc"},
		{"numeric ignores trailing zeros", "numeric(10,4)",
			[]string{`"1.0"`, `"1.00"`, `1`}, "1.0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := database(t)
			exec(t, dsn, fmt.Sprintf(`CREATE TABLE keyed (k %s PRIMARY KEY, v int NOT NULL); ALTER DATABASE %s SET timezone TO 'UTC'`, tt.keyType, dbName(dsn)))
			o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: keyed\nmapping: 'root = this'\nconflict: do_update\nretry_initial_interval: 10ms\n", dsn))
			var batch service.MessageBatch
			for i, k := range tt.keys {
				batch = append(batch, service.NewMessage(fmt.Appendf(nil, `{"k":%s,"v":%d}`, k, i)))
			}
			assert.Empty(t, writeWithin(t, 10*time.Second, o, batch))
			// A replay of the same batch, which meets the stored row.
			assert.Empty(t, writeWithin(t, 10*time.Second, o, batch))

			assert.Equal(t, []string{fmt.Sprintf("%s=%d", tt.want, len(tt.keys)-1)},
				queryStrings(t, dsn, "SELECT k::text || '=' || v FROM keyed"), "one row, the last message's")
		})
	}
}

func TestAnUnknownSQLSTATEIsRetriedBoundedlyThenDeadLettered(t *testing.T) {
	dsn := database(t)
	exec(t, dsn, `
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.source = 'poison' THEN
		RAISE EXCEPTION 'poisoned row' USING ERRCODE = 'QF001';
	END IF;
	RETURN NEW;
END $$;
CREATE TRIGGER refuse_poison BEFORE INSERT ON crypto_prices FOR EACH ROW EXECUTE FUNCTION refuse_poison();`)
	o, logs := newLoggedOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nretry_initial_interval: 10ms\nretry_max_interval: 50ms\n", dsn))
	var batch service.MessageBatch
	for i := range 100 {
		batch = append(batch, price("coin", i, `"1"`))
	}
	batch[42] = price("coin", 42, `"1"`, `"source":"poison"`)

	failed := writeWithin(t, 30*time.Second, o, batch)

	require.Len(t, failed, 1)
	e := result.Classify(failed[42])
	assert.Equal(t, result.Business, e.Category, "isolated like a BUSINESS error: %v", e)
	assert.Equal(t, "QF001", e.Code)
	assert.Contains(t, e.Error(), "poisoned row")
	assert.Equal(t, 99, count(t, dsn, "crypto_prices"))
	assert.Len(t, logs.matching("Retrying"), unknownRetries, "retried a bounded number of times first")
}

func TestConcurrentBatchesWithOverlappingKeysDoNotDeadlock(t *testing.T) {
	for _, conflict := range []string{"do_nothing", "do_update"} {
		t.Run(conflict, func(t *testing.T) {
			dsn := database(t)
			o, logs := newLoggedOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nconflict: %s\npool_size: 4\n", dsn, conflict))

			// Four writers per round, as with max_in_flight: 4 after a replay.
			// Each writes the round's keys 0..1999 (and keys of its own): one
			// ascending, one descending, two shuffled.
			const writers, shared, rounds = 4, 2000, 3
			for round := range rounds {
				var wg sync.WaitGroup
				for w := range writers {
					keys := make([]int, 0, shared+100)
					for i := range shared {
						keys = append(keys, round*100_000+i)
					}
					for i := range 100 {
						keys = append(keys, round*100_000+50_000+w*1000+i)
					}
					switch w {
					case 0:
					case 1:
						for i, j := 0, len(keys)-1; i < j; i, j = i+1, j-1 {
							keys[i], keys[j] = keys[j], keys[i]
						}
					default:
						rand.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
					}
					var batch service.MessageBatch
					for _, k := range keys {
						batch = append(batch, price(fmt.Sprintf("coin%d", k%7), k, `"1.5"`))
					}
					wg.Go(func() {
						assert.NoError(t, o.WriteBatch(context.Background(), batch))
					})
				}
				wg.Wait()
			}

			assert.Equal(t, rounds*(shared+writers*100), count(t, dsn, "crypto_prices"), "exact rows")
			assert.Empty(t, logs.matching("40P01"), "no deadlock was retried")
			assert.Empty(t, logs.matching("Retrying"), "nothing was retried")
			assert.Equal(t, 0, deadlocks(t, o, dsn), "PostgreSQL counted no deadlock in the database")
		})
	}
}

// deadlocks closes the output, waits for its backends to exit (which
// flushes their statistics), and returns the database's deadlock count.
func deadlocks(t *testing.T, o *output, dsn string) int {
	t.Helper()
	require.NoError(t, o.Close(context.Background()))
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	require.Eventually(t, func() bool {
		var others int
		require.NoError(t, conn.QueryRow(context.Background(),
			"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()").Scan(&others))
		return others == 0
	}, 10*time.Second, 20*time.Millisecond)
	var n int
	require.NoError(t, conn.QueryRow(context.Background(),
		"SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").Scan(&n))
	return n
}

func TestAStopInterruptsTheRetryWaitsOfAWriteToAStoppedDatabase(t *testing.T) {
	cluster := testenv.NewCluster(t)
	dsn := cluster.CreateDatabase(t)
	exec(t, dsn, `CREATE TABLE ticks (ts timestamptz PRIMARY KEY, px numeric NOT NULL)`)
	// Waits long enough that only the drain can end them in time.
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: ticks\nmapping: 'root = this'\nretry_initial_interval: 5s\nretry_max_interval: 10s\n", dsn))
	cluster.Stop(t)

	done := make(chan error, 1)
	go func() {
		done <- o.WriteBatch(context.Background(), service.MessageBatch{service.NewMessage([]byte(`{"ts":"2026-11-26T00:00:00Z","px":"1"}`))})
	}()
	select {
	case err := <-done:
		t.Fatalf("WriteBatch returned before the drain: %v", err)
	case <-time.After(500 * time.Millisecond): // in its retry wait by now
	}
	drained := time.Now()
	o.scope.Drain()
	select {
	case err := <-done:
		took := time.Since(drained)
		t.Logf("WriteBatch returned %v after the drain: %v", took, err)
		assert.Less(t, took, 100*time.Millisecond)
		require.Error(t, err, "the message is nacked, to be replayed")
		assert.ErrorIs(t, err, errDraining)
	case <-time.After(5 * time.Second):
		t.Fatal("WriteBatch still waits 5 s after the drain")
	}
}

func TestAStopInterruptsAWaitForAnUnreachableDeadLetterOutput(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf(`
dsn: %q
table: crypto_prices
format: price
dead_letter:
  redpanda:
    seed_brokers: [ %q ]
    topic: crypto-prices.dlq
`, dsn, closedAddress(t)))
	done := make(chan error, 1)
	go func() {
		done <- o.WriteBatch(context.Background(), service.MessageBatch{price("a", 1, `"1"`), price("b", 1, `"-1"`)})
	}()
	select {
	case err := <-done:
		t.Fatalf("WriteBatch returned before the drain: %v", err)
	case <-time.After(time.Second): // waiting for the dead-letter output by now
	}
	drained := time.Now()
	o.scope.Drain()
	select {
	case err := <-done:
		took := time.Since(drained)
		t.Logf("WriteBatch returned %v after the drain: %v", took, err)
		assert.Less(t, took, result.DrainGrace+500*time.Millisecond)
		require.Error(t, err, "the messages are nacked, to be replayed")
		assert.ErrorIs(t, err, errDraining)
	case <-time.After(10 * time.Second):
		t.Fatal("WriteBatch still waits 10 s after the drain")
	}
	assert.Equal(t, 1, count(t, dsn, "crypto_prices"), "the good row was written; a replay skips it by its key")
}

// closedAddress is a TCP address on which nothing listens.
func closedAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}
