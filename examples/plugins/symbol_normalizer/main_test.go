package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/pkg/pluginsdk"
)

func TestSymbolsAreNormalisedAndEverythingElseKept(t *testing.T) {
	n := &normalizer{}
	require.NoError(t, n.Configure(context.Background(), pluginsdk.Config(`{"mapping":{"XBT":"BTC","xdg":"DOGE"}}`)))
	cases := []struct {
		name, in, want, code string
	}{
		{name: "mapped, whatever its case", in: `{"symbol":"xbt"}`, want: `{"symbol":"BTC"}`},
		{name: "trimmed and upper-cased", in: `{"symbol":" eth "}`, want: `{"symbol":"ETH"}`},
		{name: "already canonical keeps its bytes", in: `{"b":1, "symbol":"BTC"}`, want: `{"b":1, "symbol":"BTC"}`},
		{name: "no symbol keeps its bytes", in: `{"coinId":"x"}`, want: `{"coinId":"x"}`},
		{name: "numbers keep their exact text", in: `{"symbol":"xdg","usdPrice":0.00000001,"volume":1e400}`,
			want: `{"symbol":"DOGE","usdPrice":0.00000001,"volume":1e400}`},
		{name: "not JSON", in: `nope`, code: "invalid_json"},
		{name: "an array", in: `[{"symbol":"xbt"}]`, code: "invalid_json"},
		{name: "null", in: `null`, code: "invalid_json"},
		{name: "symbol not a string", in: `{"symbol":42}`, code: "invalid_symbol"},
	}
	batch := make([]*pluginsdk.Message, len(cases))
	for i, c := range cases {
		batch[i] = &pluginsdk.Message{Payload: []byte(c.in), Metadata: map[string]string{}}
	}
	require.NoError(t, n.ProcessBatch(context.Background(), batch))
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := batch[i]
			if c.code != "" {
				require.Error(t, m.Err())
				assert.Equal(t, c.code, m.Err().(interface{ Code() string }).Code())
				return
			}
			require.NoError(t, m.Err())
			assert.Equal(t, c.want, string(m.Payload))
		})
	}
}

func TestAMappingToNothingIsRefused(t *testing.T) {
	n := &normalizer{}
	err := n.Configure(context.Background(), pluginsdk.Config(`{"mapping":{"xbt":" "}}`))
	assert.ErrorContains(t, err, `"xbt" maps to an empty symbol`)
}
