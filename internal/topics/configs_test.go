package topics

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidateConfigAcceptsWhatABrokerAccepts(t *testing.T) {
	for key, value := range map[string]string{
		"retention.ms":          "604800000",
		"retention.bytes":       "-1",
		"compression.type":      "lz4",
		"cleanup.policy":        "compact,delete",
		"min.insync.replicas":   "2",
		"redpanda.remote.write": "true",
	} {
		assert.NoError(t, ValidateConfig(key, value), "%s=%s", key, value)
	}
}

func TestValidateConfigRefusesWhatABrokerRefusesAndSaysWhy(t *testing.T) {
	cases := []struct{ key, value, says string }{
		{"retention.ms", "7d", `retention.ms: "7d" is not valid: expected an integer number of milliseconds, at least -1 (-1: forever); 7d is "604800000"`},
		{"retention.ms", "-2", "at least -1"},
		{"compression.type", "lz5", "one of producer, uncompressed, none, gzip, snappy, lz4, zstd"},
		{"cleanup.policy", "remove", `delete, compact or "compact,delete"`},
		{"min.insync.replicas", "0", "at least 1"},
		{"retention.msec", "1", `unknown topic config "retention.msec"`},
	}
	for _, c := range cases {
		err := ValidateConfig(c.key, c.value)
		if assert.Error(t, err, "%s=%s", c.key, c.value) {
			assert.Contains(t, err.Error(), c.says)
		}
	}
}
