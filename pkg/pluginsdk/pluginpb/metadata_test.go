package pluginpb

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMetadataRoundTripsAnyBytes(t *testing.T) {
	pairs := [][2]string{{"kafka_key", "binance:BTC"}, {"", ""}, {"header", "\xff\xfe not UTF-8"}, {"long", string(make([]byte, 300))}}
	var encoded []byte
	for _, p := range pairs {
		encoded = AppendMetadata(encoded, p[0], p[1])
	}
	var got [][2]string
	require.NoError(t, RangeMetadata(encoded, func(k, v []byte) bool {
		got = append(got, [2]string{string(k), string(v)})
		return true
	}))
	assert.Equal(t, pairs, got)
}

func TestMalformedMetadataIsAnError(t *testing.T) {
	for name, encoded := range map[string][]byte{
		"key longer than the rest": {5, 'a'},
		"key without a value":      {1, 'a'},
		"truncated length":         {0x80},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, RangeMetadata(encoded, func(_, _ []byte) bool { return true }))
		})
	}
}
