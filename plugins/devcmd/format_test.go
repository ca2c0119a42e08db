package devcmd_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/qicore/qiflow/internal/testenv"
)

// TestDevFormatAvroWritesPricesFromAvroMessages runs `qiflow dev --format
// avro` end to end against a broker and a database the test can read
// afterwards: the feed's prices go to crypto-prices-avro as
// Confluent-framed Avro (magic byte 0 and the schema id the run's registry
// gave), not to crypto-prices, and prices_avro.yaml writes them into
// crypto_prices and commits them all.
func TestDevFormatAvroWritesPricesFromAvroMessages(t *testing.T) {
	broker := testenv.NewBroker(t)
	dsn := testenv.Database(t)
	t.Setenv("REDPANDA_BROKERS", broker.SeedList())
	t.Setenv("DATABASE_URL", dsn)

	out := runDev(t, 2*time.Minute, "--use-env", "--format", "avro", "--duration", "6s", "--interval", "2s")
	assert.Contains(t, out, "registry: in-process srfake at http://127.0.0.1:")
	assert.Contains(t, out, "uncommitted   qiflow-prices-avro 0 qiflow-ohlcv 0 qiflow-analytics 0")
	last := summaryRows(t, out[strings.LastIndex(out, "stopping:"):])
	assert.Positive(t, last["prices"], "the summary shows the Avro prices' rows")

	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows := tableRows(t, conn)
	assert.Positive(t, rows["prices"], "prices were written from Avro messages")
	assert.Equal(t, int64(last["prices"]), rows["prices"])
	assert.Positive(t, rows["ohlcv"], "candles stay JSON and are written")

	ends, err := broker.Admin(t).ListEndOffsets(context.Background(), "crypto-prices", "crypto-prices-avro")
	require.NoError(t, err)
	sums := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { sums[o.Topic] += o.Offset })
	assert.Zero(t, sums["crypto-prices"], "no JSON prices were produced")
	assert.Positive(t, sums["crypto-prices-avro"])
	records := broker.ConsumeAll(t, "crypto-prices-avro")
	require.NotEmpty(t, records)
	for _, r := range records[:min(len(records), 100)] {
		require.Greater(t, len(r.Value), 5)
		assert.Equal(t, byte(0), r.Value[0], "Confluent magic byte")
		assert.NotEqual(t, byte('{'), r.Value[5], "an Avro payload, not JSON")
	}
}
