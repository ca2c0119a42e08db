// Package topics holds what qiflow knows about Kafka/Redpanda topic
// settings, shared by the commands that create topics: which config keys
// exist and which values a broker accepts for them.
package topics

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// configRule checks one topic config value; it returns "" when the value
// is valid, or the expected form.
type configRule func(value string) string

// integerAtLeast accepts a base-10 integer of at least min; unit names the
// number ("milliseconds", "bytes") in the expected form.
func integerAtLeast(min int64, unit string) configRule {
	return func(v string) string {
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n >= min {
			return ""
		}
		return fmt.Sprintf("an integer number of %s, at least %d", unit, min)
	}
}

// milliseconds accepts a number of milliseconds, -1 meaning unlimited
// where allowUnlimited, and suggests the number for a duration such as
// "7d".
func milliseconds(allowUnlimited bool) configRule {
	min := int64(0)
	if allowUnlimited {
		min = -1
	}
	base := integerAtLeast(min, "milliseconds")
	return func(v string) string {
		want := base(v)
		if want == "" {
			return ""
		}
		if allowUnlimited {
			want += " (-1: forever)"
		}
		if d, ok := humanDuration(v); ok {
			want += fmt.Sprintf(`; %s is "%d"`, v, d.Milliseconds())
		}
		return want
	}
}

// bytesCount accepts a number of bytes, -1 meaning unlimited where
// allowUnlimited.
func bytesCount(allowUnlimited bool) configRule {
	min := int64(1)
	if allowUnlimited {
		min = -1
	}
	return integerAtLeast(min, "bytes")
}

func oneOf(values ...string) configRule {
	return func(v string) string {
		if slices.Contains(values, v) {
			return ""
		}
		return "one of " + strings.Join(values, ", ")
	}
}

func boolean(v string) string { return oneOf("true", "false")(v) }

func ratio(v string) string {
	f, err := strconv.ParseFloat(v, 64)
	if err == nil && f >= 0 && f <= 1 {
		return ""
	}
	return "a number between 0 and 1"
}

// cleanupPolicy accepts delete, compact, or both comma-separated.
func cleanupPolicy(v string) string {
	parts := strings.Split(v, ",")
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
			return `delete, compact or "compact,delete"`
		}
	}
	return ""
}

// configRules are the topic configs of Apache Kafka (and Redpanda's
// equivalents) with the values a broker accepts. A key not listed here is
// refused unless it starts with "redpanda." (Redpanda's own, passed on
// unchecked): Kafka answers an unknown key with INVALID_CONFIG.
var configRules = map[string]configRule{
	"cleanup.policy":                          cleanupPolicy,
	"compression.type":                        oneOf("producer", "uncompressed", "none", "gzip", "snappy", "lz4", "zstd"),
	"delete.retention.ms":                     milliseconds(false),
	"file.delete.delay.ms":                    milliseconds(false),
	"flush.messages":                          integerAtLeast(1, "messages"),
	"flush.ms":                                milliseconds(false),
	"index.interval.bytes":                    bytesCount(false),
	"local.retention.bytes":                   bytesCount(true),
	"local.retention.ms":                      milliseconds(true),
	"max.compaction.lag.ms":                   milliseconds(false),
	"max.message.bytes":                       bytesCount(false),
	"message.downconversion.enable":           boolean,
	"message.timestamp.after.max.ms":          milliseconds(false),
	"message.timestamp.before.max.ms":         milliseconds(false),
	"message.timestamp.difference.max.ms":     milliseconds(false),
	"message.timestamp.type":                  oneOf("CreateTime", "LogAppendTime"),
	"min.cleanable.dirty.ratio":               ratio,
	"min.compaction.lag.ms":                   milliseconds(false),
	"min.insync.replicas":                     integerAtLeast(1, "replicas"),
	"preallocate":                             boolean,
	"remote.storage.enable":                   boolean,
	"retention.bytes":                         bytesCount(true),
	"retention.ms":                            milliseconds(true),
	"segment.bytes":                           integerAtLeast(14, "bytes"),
	"segment.index.bytes":                     integerAtLeast(4, "bytes"),
	"segment.jitter.ms":                       milliseconds(false),
	"segment.ms":                              integerAtLeast(1, "milliseconds"),
	"unclean.leader.election.enable":          boolean,
	"write.caching":                           boolean,
	"initial.retention.local.target.ms":       milliseconds(true),
	"initial.retention.local.target.bytes":    bytesCount(true),
	"leader.replication.throttled.replicas":   func(string) string { return "" },
	"follower.replication.throttled.replicas": func(string) string { return "" },
}

// ValidateConfig checks a topic config key and value as a Kafka or
// Redpanda broker would, and says what is expected when it would refuse
// them.
func ValidateConfig(key, value string) error {
	if strings.HasPrefix(key, "redpanda.") {
		return nil
	}
	rule, ok := configRules[key]
	if !ok {
		return fmt.Errorf("unknown topic config %q (Kafka refuses it; Redpanda's own keys start with \"redpanda.\")", key)
	}
	if want := rule(value); want != "" {
		return fmt.Errorf("%s: %q is not valid: expected %s", key, value, want)
	}
	return nil
}

// durationPattern matches a duration as people write it: 7d, 12h, 30m,
// 1w, 500ms.
var durationPattern = regexp.MustCompile(`^\s*(\d+)\s*(ms|s|m|h|d|w)\s*$`)

// humanDuration reads a duration such as "7d" to suggest its milliseconds.
func humanDuration(v string) (time.Duration, bool) {
	m := durationPattern.FindStringSubmatch(v)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false
	}
	unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}[m[2]]
	return time.Duration(n) * unit, true
}
