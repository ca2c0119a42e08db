package timescale_output

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/schema"
	"github.com/qicore/qiflow/internal/testenv"
	_ "github.com/qicore/qiflow/plugins/redpanda"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// database returns a fresh database with the shipped schema applied.
func database(t testing.TB) string {
	return databaseWith(t, "../../pipelines/schema.yaml")
}

// databaseWith returns a fresh database with the schema spec at path
// applied.
func databaseWith(t testing.TB, path string) string {
	t.Helper()
	dsn := testenv.Database(t)
	spec, err := schema.Load(path)
	require.NoError(t, err)
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = schema.Apply(context.Background(), conn, spec, schema.ApplyOptions{})
	require.NoError(t, err)
	return dsn
}

func exec(t testing.TB, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(context.Background(), sql)
	require.NoError(t, err)
}

func queryStrings(t testing.TB, dsn, sql string, args ...any) []string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func count(t *testing.T, dsn, table string) int {
	t.Helper()
	n, err := strconv.Atoi(queryStrings(t, dsn, "SELECT count(*)::text FROM "+table)[0])
	require.NoError(t, err)
	return n
}

// newOutput parses yaml as a user's config and connects the output.
func newOutput(t testing.TB, yaml string) *output {
	t.Helper()
	result.ResetHalt()
	t.Cleanup(result.ResetHalt)
	env := service.NewEnvironment()
	conf, err := spec().ParseYAML(yaml, env)
	require.NoError(t, err)
	o, err := newOutputFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, o.Connect(ctx))
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

// baseMillis is where test timestamps start: an hour ago, so that the
// shipped schema's retention and columnstore policies leave the rows alone.
var baseMillis = time.Now().Add(-time.Hour).Truncate(time.Second).UnixMilli()

// price is a valid price message; fields override its values.
func price(coin string, i int, usd string, fields ...string) *service.Message {
	msg := fmt.Sprintf(`{"coinId":%q,"symbol":"SYM","exchangeId":"binance","usdPrice":%s,"lastUpdated":%d,"source":"test","attribution":"qiflow"%s}`,
		coin, usd, baseMillis+int64(i)*1000, strings.Join(append([]string{""}, fields...), ","))
	m := service.NewMessage([]byte(msg))
	m.MetaSetMut("kafka_topic", "crypto-prices")
	m.MetaSetMut("kafka_partition", "3")
	m.MetaSetMut("kafka_offset", strconv.Itoa(i))
	return m
}

// write writes batch and returns the error of each message that failed.
func write(t *testing.T, o *output, batch service.MessageBatch) map[int]error {
	t.Helper()
	index := batch.Index()
	err := o.WriteBatch(context.Background(), batch)
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

func TestNumericValuesAreStoredExactly(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\n", dsn))
	batch := service.MessageBatch{
		price("tiny", 1, `0.00000001`),
		price("huge", 2, `99999999999.99999999`),
		price("string", 3, `"67234.12345678"`),
		price("overflow", 4, `1234567890123.5`),
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 1, "without a dead-letter output the failure is returned per message")
	assert.Contains(t, failed[3].Error(), "more than 12 integer digits")
	assert.Equal(t, result.Business, result.CategoryOf(failed[3]))

	got := queryStrings(t, dsn, "SELECT coin_id || '=' || usd_price::text FROM crypto_prices ORDER BY coin_id")
	assert.Equal(t, []string{"huge=99999999999.99999999", "string=67234.12345678", "tiny=0.00000001"}, got)
}

func TestReplayedMessagesAddNoRows(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\n", dsn))
	var batches []service.MessageBatch
	for b := range 10 {
		var batch service.MessageBatch
		for i := range 1000 {
			batch = append(batch, price("coin", b*1000+i, `"1.5"`))
		}
		batches = append(batches, batch)
	}
	for range 2 {
		for _, batch := range batches {
			require.NoError(t, o.WriteBatch(context.Background(), batch))
		}
	}
	assert.Equal(t, 10_000, count(t, dsn, "crypto_prices"))

	// A batch that mixes new rows with replayed ones writes only the new.
	mixed := append(service.MessageBatch{}, batches[0][:500]...)
	for i := range 500 {
		mixed = append(mixed, price("coin", 20_000+i, `"1.5"`))
	}
	require.NoError(t, o.WriteBatch(context.Background(), mixed))
	assert.Equal(t, 10_500, count(t, dsn, "crypto_prices"))
}

func TestDoUpdateLastWriteWins(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nconflict: do_update\n", dsn))
	require.NoError(t, o.WriteBatch(context.Background(), service.MessageBatch{price("btc", 1, `"100"`), price("eth", 1, `"10"`)}))
	require.NoError(t, o.WriteBatch(context.Background(), service.MessageBatch{
		price("btc", 1, `"101"`),
		price("btc", 1, `"102"`), // same key later in the batch: it wins
		price("eth", 2, `"11"`),
	}))
	got := queryStrings(t, dsn, "SELECT coin_id || '=' || usd_price::text FROM crypto_prices ORDER BY coin_id, last_updated")
	assert.Equal(t, []string{"btc=102.00000000", "eth=10.00000000", "eth=11.00000000"}, got)
}

func TestDoNothingFirstWriteWinsWithinABatch(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\n", dsn))
	require.NoError(t, o.WriteBatch(context.Background(), service.MessageBatch{price("btc", 1, `"100"`), price("btc", 1, `"200"`)}))
	assert.Equal(t, []string{"100.00000000"}, queryStrings(t, dsn, "SELECT usd_price::text FROM crypto_prices"))
}

func TestConflictErrorFailsDuplicateRows(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nconflict: error\n", dsn))
	require.NoError(t, o.WriteBatch(context.Background(), service.MessageBatch{price("btc", 1, `"100"`)}))
	batch := service.MessageBatch{price("btc", 1, `"100"`), price("btc", 2, `"100"`), price("btc", 2, `"100"`)}
	failed := write(t, o, batch)
	require.Len(t, failed, 2)
	for _, err := range failed {
		assert.Equal(t, "23505", result.Classify(err).Code)
	}
	assert.Equal(t, 2, count(t, dsn, "crypto_prices"))
}

func TestBatchWithSevenBadRowsWritesTheRestAndDeadLettersExactlyThem(t *testing.T) {
	dsn := database(t)
	// A rule only the database knows, so one bad row is found by splitting.
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

	bad := map[int]*service.Message{
		3:   service.NewMessage([]byte(`{"coinId": "broken`)),
		100: price("x", 100, `"1"`, `"symbol":null`),
		250: price("x", 250, `"abc"`),
		400: price("x", 400, `"-5"`),
		555: price("x", 555, `"12345678901234"`),
		700: price(strings.Repeat("c", 65), 700, `"1"`),
		901: price("x", 901, `"1"`, `"source":"banned"`),
	}
	var batch service.MessageBatch
	for i := range 1000 {
		msg := price("coin", i, `"2.5"`)
		if b, ok := bad[i]; ok {
			msg = b
			msg.MetaSetMut("kafka_offset", strconv.Itoa(i))
			msg.MetaSetMut("kafka_topic", "crypto-prices")
			msg.MetaSetMut("kafka_partition", "3")
		}
		batch = append(batch, msg)
	}
	require.NoError(t, o.WriteBatch(context.Background(), batch), "dead-lettered messages count as delivered")
	assert.Equal(t, 993, count(t, dsn, "crypto_prices"))

	letters := broker.ConsumeAll(t, "crypto-prices.dlq")
	require.Len(t, letters, 7)
	wantCodes := map[string]string{
		"3": "invalid_json", "100": "missing_field", "250": "invalid_field", "400": "validation_failed",
		"555": "invalid_value", "700": "invalid_value", "901": "23514",
	}
	for _, l := range letters {
		h := map[string]string{}
		for _, kv := range l.Headers {
			h[kv.Key] = string(kv.Value)
		}
		offset := h[result.HeaderSourceOffset]
		assert.Equal(t, "BUSINESS", h[result.HeaderErrorCategory], offset)
		assert.Equal(t, wantCodes[offset], h[result.HeaderErrorCode], "offset %s: %s", offset, h[result.HeaderError])
		assert.NotEmpty(t, h[result.HeaderError])
		assert.Equal(t, "crypto-prices", h[result.HeaderSourceTopic])
		assert.Equal(t, "3", h[result.HeaderSourcePartition])
		i, _ := strconv.Atoi(offset)
		assert.Equal(t, string(mustBytes(t, bad[i])), string(l.Value), "the original value is kept")
	}
}

func mustBytes(t *testing.T, m *service.Message) []byte {
	b, err := m.AsBytes()
	require.NoError(t, err)
	return b
}

func TestMappingWritesAnyTable(t *testing.T) {
	dsn := database(t)
	exec(t, dsn, `CREATE TABLE ticks (ts TIMESTAMPTZ NOT NULL, pair TEXT NOT NULL, px NUMERIC(12,4) NOT NULL, qty BIGINT, note TEXT DEFAULT 'none', PRIMARY KEY (ts, pair))`)
	o := newOutput(t, fmt.Sprintf(`
dsn: %q
table: public.ticks
mapping: |
  root.ts = this.t
  root.pair = this.p.uppercase()
  root.px = this.px
  root.qty = this.q
`, dsn))
	batch := service.MessageBatch{
		service.NewMessage([]byte(`{"t":"2026-11-26T00:00:00Z","p":"btc-usd","px":1234.5678,"q":3}`)),
		service.NewMessage([]byte(`{"t":1764115200000,"p":"eth-usd","px":"0.0001","q":null}`)),
		service.NewMessage([]byte(`{"t":"2026-11-26T00:00:00Z","p":"x","px":1.23456}`)), // scale 5 > 4
	}
	failed := write(t, o, batch)
	require.Len(t, failed, 1)
	assert.Contains(t, failed[2].Error(), "more than 4 decimal places")
	got := queryStrings(t, dsn, "SELECT pair || '=' || px::text || ':' || coalesce(qty::text, 'null') || ':' || note FROM ticks ORDER BY pair")
	assert.Equal(t, []string{"BTC-USD=1234.5678:3:none", "ETH-USD=0.0001:null:none"}, got, "unset columns keep their defaults")
}

func TestConfigErrorsNameTheProblem(t *testing.T) {
	dsn := database(t)
	tests := []struct{ name, yaml, want string }{
		{"unknown table", "table: crypto_nothing\nformat: price", `table "crypto_nothing" does not exist`},
		{"unknown column", "table: crypto_prices\nmapping: 'root = this'\ncolumns: [ coin_id, usd_prize ]", "has no column usd_prize"},
		{"missing required column", "table: crypto_prices\nmapping: 'root = this'\ncolumns: [ coin_id ]", "requires last_updated, symbol"},
		{"format on the wrong table", "table: crypto_ohlcv\nformat: price", "has no column last_updated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result.ResetHalt()
			defer result.ResetHalt()
			conf, err := spec().ParseYAML(fmt.Sprintf("dsn: %q\n%s\n", dsn, tt.yaml), nil)
			require.NoError(t, err)
			o, err := newOutputFromConfig(conf, service.MockResources())
			require.NoError(t, err)
			require.NoError(t, o.Connect(context.Background()), "a configuration error is not retried")
			halted := result.Halted()
			require.Error(t, halted, "a configuration error stops the pipeline")
			assert.Contains(t, halted.Error(), tt.want)
			assert.ErrorContains(t, o.WriteBatch(context.Background(), service.MessageBatch{price("a", 1, "1")}), tt.want)
		})
	}
}

func TestLintRejectsFormatAndMappingTogether(t *testing.T) {
	env := service.NewEnvironment()
	b := env.NewStreamBuilder()
	err := b.SetYAML(`
input:
  generate: { mapping: 'root = {}', count: 1 }
output:
  timescale:
    dsn: postgres://localhost/x
    table: t
    format: price
    mapping: 'root = this'
`)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "set either format or mapping, not both")
}

func TestRejectedCredentialsAndPrivilegesStopWithSecurity(t *testing.T) {
	dsn := database(t)
	role := fmt.Sprintf("reader_%d", time.Now().UnixNano())
	exec(t, dsn, fmt.Sprintf(`CREATE ROLE %s LOGIN; GRANT SELECT ON crypto_prices TO %s;`, role, role))
	t.Cleanup(func() {
		exec(t, dsn, fmt.Sprintf(`REVOKE ALL ON crypto_prices FROM %s`, role))
		exec(t, strings.Replace(dsn, dbName(dsn), "postgres", 1), "DROP ROLE IF EXISTS "+role)
	})
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)

	t.Run("unknown role", func(t *testing.T) {
		result.ResetHalt()
		defer result.ResetHalt()
		bad := strings.Replace(dsn, "://"+cfg.User+"@", "://nobody_here@", 1)
		conf, err := spec().ParseYAML(fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\n", bad), nil)
		require.NoError(t, err)
		o, err := newOutputFromConfig(conf, service.MockResources())
		require.NoError(t, err)
		require.NoError(t, o.Connect(context.Background()))
		require.Error(t, result.Halted())
		assert.Equal(t, result.Security, result.CategoryOf(result.Halted()), "%v", result.Halted())
	})
	t.Run("no insert privilege", func(t *testing.T) {
		reader := strings.Replace(dsn, "://"+cfg.User+"@", "://"+role+"@", 1)
		o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\n", reader))
		err := o.WriteBatch(context.Background(), service.MessageBatch{price("a", 1, "1")})
		require.Error(t, err)
		assert.Equal(t, result.Security, result.CategoryOf(result.Halted()), "%v", result.Halted())
		assert.Contains(t, result.Halted().Error(), "42501")
	})
}

func TestSchemaFileIsAppliedBeforeTheFirstWrite(t *testing.T) {
	dsn := testenv.Database(t)
	o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\nschema_file: ../../pipelines/schema.yaml\n", dsn))
	require.NoError(t, o.WriteBatch(context.Background(), service.MessageBatch{price("btc", 1, `"1"`)}))
	assert.Equal(t, 1, count(t, dsn, "crypto_prices"))
	assert.Equal(t, 0, count(t, dsn, "crypto_market_analytics"), "the whole schema was applied")
}

func dbName(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return ""
	}
	return cfg.Database
}
