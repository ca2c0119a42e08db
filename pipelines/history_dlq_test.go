package pipelines_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
	"github.com/qicore/qiflow/plugins/dlq"
)

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err, sql)
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, explain func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s\n%s", what, timeout, explain())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRedrivenDeadLettersBecomeRowsOnceTheCauseIsFixed runs the shipped
// prices pipeline against a crypto_prices whose symbol column is too
// narrow: five messages are dead-lettered with invalid_value. Once the
// column is widened, `qiflow dlq replay` sends them back to crypto-prices
// byte for byte, and the pipeline writes them. A second redrive adds no
// rows.
func TestRedrivenDeadLettersBecomeRowsOnceTheCauseIsFixed(t *testing.T) {
	broker := newBroker(t)
	dsn := withTables(t, testenv.Database(t))
	execSQL(t, dsn, `ALTER TABLE crypto_prices ALTER COLUMN symbol TYPE varchar(4)`)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")

	var records []*kgo.Record
	for i := range 20 {
		symbol := fmt.Sprintf("C%d", i)
		if i%4 == 3 {
			symbol = fmt.Sprintf("LONGSYMBOL%d", i) // too long for varchar(4)
		}
		records = append(records, &kgo.Record{
			Key: []byte("binance:" + symbol),
			Value: fmt.Appendf(nil, `{"coinId":"coin-%d","symbol":%q,"exchangeId":"binance","usdPrice":"%d.00000001","lastUpdated":%d,"source":"test","attribution":"qiflow"}`,
				i, symbol, 100+i, baseMillis),
		})
	}
	broker.Produce(t, "crypto-prices", records...)

	pipeline := qiflow(t, env(broker, dsn), "run", "prices.yaml")
	waitFor(t, "15 rows and 5 dead letters", 2*time.Minute, func() bool {
		return rowCount(t, dsn, "crypto_prices") == 15 && len(broker.ConsumeAll(t, "crypto-prices.dlq")) == 5
	}, pipeline.Output)
	stop(t, pipeline)
	letters := broker.ConsumeAll(t, "crypto-prices.dlq")
	for _, l := range letters {
		assert.Contains(t, string(l.Value), "LONGSYMBOL")
	}

	list := testenv.StartProcess(t, bin, env(broker, dsn), "dlq", "list", "--topic", "crypto-prices.dlq", "--code", "invalid_value")
	code, err := list.Wait(time.Minute)
	require.NoError(t, err)
	require.Equal(t, 0, code, list.Output())
	assert.Contains(t, list.Output(), "crypto-prices.dlq/0/4")
	assert.Contains(t, list.Output(), "column symbol character varying(4)")

	// The fix: widen the column, then redrive.
	execSQL(t, dsn, `ALTER TABLE crypto_prices ALTER COLUMN symbol TYPE varchar(32)`)
	redrive := func() {
		t.Helper()
		p := testenv.StartProcess(t, bin, env(broker, dsn), "dlq", "replay", "--topic", "crypto-prices.dlq", "--code", "invalid_value")
		code, err := p.Wait(time.Minute)
		require.NoError(t, err)
		require.Equal(t, 0, code, p.Output())
		assert.Contains(t, p.Output(), "redrove 5 letters")
	}
	redrive()
	var redriven []*kgo.Record
	for _, r := range broker.ConsumeAll(t, "crypto-prices") {
		if len(r.Headers) > 0 && r.Headers[0].Key == dlq.HeaderRedrive {
			redriven = append(redriven, r)
		}
	}
	require.Len(t, redriven, 5, "each letter once")
	seen := map[string]bool{}
	for _, r := range redriven {
		id := string(r.Headers[0].Value)
		assert.False(t, seen[id], "%s once", id)
		seen[id] = true
		var offset int
		_, err := fmt.Sscanf(id, "crypto-prices.dlq/0/%d", &offset)
		require.NoError(t, err, id)
		require.Less(t, offset, len(letters))
		assert.Equal(t, letters[offset].Key, r.Key, "key byte for byte")
		assert.Equal(t, letters[offset].Value, r.Value, "value byte for byte")
	}

	pipeline = qiflow(t, env(broker, dsn), "run", "prices.yaml")
	waitFor(t, "the redriven letters written", 2*time.Minute, func() bool {
		return rowCount(t, dsn, "crypto_prices") == 20
	}, pipeline.Output)
	assert.Equal(t, 5, rowCount(t, dsn, "crypto_prices WHERE symbol LIKE 'LONGSYMBOL%'"))

	redrive()
	waitCommitted(t, broker, "qiflow-prices", "crypto-prices", 2*time.Minute, pipeline)
	assert.Equal(t, 20, rowCount(t, dsn, "crypto_prices"), "a second redrive adds no rows")
	assert.Len(t, broker.ConsumeAll(t, "crypto-prices.dlq"), 5, "and dead-letters nothing new")
	stop(t, pipeline)
}
