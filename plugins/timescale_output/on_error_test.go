package timescale_output

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
)

// TestADeletedMessageIsAcknowledgedWithoutARow deletes every other message
// in the mapping: the batch succeeds, the kept messages are rows, and the
// deleted ones are neither rows nor dead letters nor errors, as with any
// Benthos output.
func TestADeletedMessageIsAcknowledgedWithoutARow(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf(`
dsn: %q
table: crypto_prices
mapping: |
  root = if this.coinId.has_prefix("skip") { deleted() } else {
    {"last_updated": this.lastUpdated, "coin_id": this.coinId, "symbol": this.symbol, "exchange_id": this.exchangeId,
     "usd_price": this.usdPrice, "source": this.source, "attribution": this.attribution}
  }
`, dsn))
	var batch service.MessageBatch
	for i := range 10 {
		coin := "keep"
		if i%2 == 1 {
			coin = "skip"
		}
		batch = append(batch, price(fmt.Sprintf("%s%d", coin, i), i, "1"))
	}
	assert.Empty(t, write(t, o, batch), "a deleted message is no error")
	assert.Equal(t, 5, count(t, dsn, "crypto_prices"))
	assert.Empty(t, queryStrings(t, dsn, "SELECT coin_id FROM crypto_prices WHERE coin_id LIKE 'skip%'"))
}

// TestAMappingThatSetsAnUnknownKeyStopsTheStreamNamingIt misspells a
// column in the mapping. Before, the key was ignored and every row then
// failed on the NOT NULL column forever; now the first message stops the
// stream with an error that names the key and the columns written.
func TestAMappingThatSetsAnUnknownKeyStopsTheStreamNamingIt(t *testing.T) {
	dsn := database(t)
	o := newOutput(t, fmt.Sprintf(`
dsn: %q
table: crypto_prices
mapping: |
  root = {"last_updated": this.lastUpdated, "coin_id": this.coinId, "symbol": this.symbol, "exchange_id": this.exchangeId,
          "usd_prize": this.usdPrice, "source": this.source, "attribution": this.attribution}
`, dsn))
	err := o.WriteBatch(context.Background(), service.MessageBatch{price("btc", 1, "1")})
	require.Error(t, err)
	halted := result.Halted()
	require.Error(t, halted, "the stream stops")
	assert.Contains(t, halted.Error(), "the mapping sets usd_prize, which \"crypto_prices\" does not write")
	assert.Contains(t, halted.Error(), "usd_price", "it lists the columns written")
	assert.Zero(t, count(t, dsn, "crypto_prices"))
}

// badBatch is two good prices around a negative one.
func badBatch() service.MessageBatch {
	return service.MessageBatch{price("a", 1, "1"), price("b", 2, "-5"), price("c", 3, "3")}
}

// TestOnErrorSaysWhatHappensToAMessageThatCanNeverBeWritten writes a batch
// with one negative price under each on_error.
func TestOnErrorSaysWhatHappensToAMessageThatCanNeverBeWritten(t *testing.T) {
	t.Run("drop writes the rest and acknowledges it unwritten", func(t *testing.T) {
		dsn := database(t)
		o, logs := newLoggedOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\non_error: drop\n", dsn))
		assert.Empty(t, write(t, o, badBatch()))
		assert.Equal(t, 2, count(t, dsn, "crypto_prices"))
		lines := logs.matching("Dropping message 1")
		require.Len(t, lines, 1)
		assert.Contains(t, lines[0], "crypto-prices/3 at offset 2", "it says where the message came from")
		assert.Contains(t, lines[0], "usdPrice", "and why")
		assert.NoError(t, result.Halted())
	})
	t.Run("fail stops the stream with the message's error", func(t *testing.T) {
		dsn := database(t)
		o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\non_error: fail\n", dsn))
		failed := write(t, o, badBatch())
		assert.Contains(t, failed, 1)
		halted := result.Halted()
		require.Error(t, halted)
		assert.Contains(t, halted.Error(), "on_error: fail: a message for \"crypto_prices\" cannot be written (crypto-prices/3 at offset 2)")
		assert.Contains(t, halted.Error(), "usdPrice")
		assert.ErrorContains(t, o.WriteBatch(context.Background(), service.MessageBatch{price("d", 4, "4")}), "cannot be written",
			"a stopped output writes nothing more")
	})
	t.Run("retry fails the message for the input to replay", func(t *testing.T) {
		dsn := database(t)
		o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\non_error: retry\n", dsn))
		failed := write(t, o, badBatch())
		assert.Equal(t, []int{1}, keys(failed))
		assert.Equal(t, 2, count(t, dsn, "crypto_prices"))
		assert.NoError(t, result.Halted())
	})
	t.Run("nothing set and no dead_letter is retry", func(t *testing.T) {
		dsn := database(t)
		o := newOutput(t, fmt.Sprintf("dsn: %q\ntable: crypto_prices\nformat: price\n", dsn))
		assert.Equal(t, onErrorRetry, o.conf.onError)
		assert.Equal(t, []int{1}, keys(write(t, o, badBatch())))
	})
}

func keys(m map[int]error) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestOnErrorAndDeadLetterMustAgree(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"on_error: dead_letter", "on_error: dead_letter needs a dead_letter output"},
		{"on_error: drop\ndead_letter: { drop: {} }", "dead_letter is used only with on_error: dead_letter"},
	} {
		b := service.NewEnvironment().NewStreamBuilder()
		err := b.SetYAML(fmt.Sprintf(`
input:
  generate: { mapping: 'root = {}', count: 1 }
output:
  timescale:
    dsn: postgres://localhost/x
    table: t
    format: price
    %s
`, strings.ReplaceAll(tt.yaml, "\n", "\n    ")))
		require.Error(t, err, tt.yaml)
		assert.Contains(t, err.Error(), tt.want)
	}
}
