package exchangerouter

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPlacerPlacesAsTheProcessorDoes(t *testing.T) {
	const yaml = "topic: crypto-prices\npartitions: 12\nhot_exchanges: { binance: 9 }"
	conf, err := processorSpec().ParseYAML(yaml, nil)
	require.NoError(t, err)
	proc, err := newProcessorFromConfig(conf, service.MockResources())
	require.NoError(t, err)
	placer, err := NewPlacer(yaml)
	require.NoError(t, err)

	var (
		raws  [][]byte
		batch service.MessageBatch
	)
	for _, ex := range []string{"binance", "coinbase", "Kraken", "gdax", "okx"} {
		for s := range 40 {
			raw := fmt.Appendf(nil, `{"exchangeId":%q,"symbol":"S%d"}`, ex, s)
			raws = append(raws, raw)
			batch = append(batch, service.NewMessage(append([]byte(nil), raw...)))
		}
	}
	out, err := proc.ProcessBatch(context.Background(), batch)
	require.NoError(t, err)
	for i, m := range out[0] {
		topic, key, partition, msg, err := placer.Place(raws[i])
		require.NoError(t, err)
		wantPartition, _ := m.MetaGet(MetaPartition)
		wantKey, _ := m.MetaGet(MetaKey)
		wantTopic, _ := m.MetaGet(MetaTopic)
		body, _ := m.AsBytes()
		assert.Equal(t, wantTopic, topic)
		assert.Equal(t, wantKey, key)
		assert.Equal(t, wantPartition, strconv.Itoa(int(partition)))
		assert.Equal(t, string(body), string(msg))
	}

	_, err = NewPlacer("topic: t\npartitions: 3\nexchange_mapping: 'root = this.venue'")
	assert.ErrorContains(t, err, "exchange_mapping")
}
