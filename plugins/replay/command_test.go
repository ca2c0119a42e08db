package replay

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
	exchangerouter "github.com/qicore/qiflow/plugins/exchange_router"
)

// shippedRouter holds the price feed's exchange_router fields, for --router.
const shippedRouter = "../../pipelines/examples/routers/prices.yaml"

// TestTheShippedRouterFilePlacesAsTheFeedDoes loads the shipped router file
// as `qiflow replay --router` does and checks that it places series as the
// price feed's router (pipelines/feed.yaml: crypto-prices, 12 partitions).
func TestTheShippedRouterFilePlacesAsTheFeedDoes(t *testing.T) {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "crypto-prices-rebuild", 12)
	placer, err := newPlacer(context.Background(), broker.Client(t), shippedRouter, "crypto-prices-rebuild", 0)
	require.NoError(t, err)
	feed, err := exchangerouter.NewPlacer("topic: crypto-prices-rebuild\npartitions: 12\n")
	require.NoError(t, err)

	for _, msg := range []string{
		`{"exchangeId":"binance","coinId":"bitcoin","symbol":"BTC"}`,
		`{"exchangeId":"coinbase","coinId":"ethereum","symbol":"ETH"}`,
		`{"exchangeId":"kraken","coinId":"solana","symbol":"SOL"}`,
	} {
		topic, key, partition, _, err := placer.Place([]byte(msg))
		require.NoError(t, err, msg)
		wantTopic, wantKey, wantPartition, _, err := feed.Place([]byte(msg))
		require.NoError(t, err, msg)
		assert.Equal(t, []any{wantTopic, wantKey, wantPartition}, []any{topic, key, partition}, msg)
	}

	// A row stored under another policy still replays, as the default
	// exchange, where the feed would have rejected it.
	_, _, _, _, err = placer.Place([]byte(`{"exchangeId":"nowhere","coinId":"bitcoin","symbol":"BTC"}`))
	assert.NoError(t, err)
}
