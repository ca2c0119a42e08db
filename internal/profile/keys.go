package profile

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// valueKind is how a key's value is written and checked.
type valueKind int

const (
	kindString valueKind = iota
	kindList
	kindBool
	kindInt
	kindDuration
	// kindSecret is a password: never shown, never taken from a flag.
	kindSecret
	// kindURL is a connection string: shown with its password masked,
	// taken from a flag only without a password.
	kindURL
)

// keySpec describes one profile key. The same dotted key is used in
// qiflow.yaml (nested), in --profile-set and, as QIFLOW_ plus the key in
// upper case with dots as underscores, in the environment.
type keySpec struct {
	key  string
	kind valueKind
	// contract is the DESIGN.md variable that sets the key too, below the
	// QIFLOW_ variable.
	contract string
}

// keySpecs lists every key, in the order `qiflow profile` shows them.
var keySpecs = []keySpec{
	{key: "redpanda.brokers", kind: kindList, contract: "REDPANDA_BROKERS"},
	{key: "redpanda.client_id", kind: kindString},
	{key: "redpanda.dial_timeout", kind: kindDuration},
	{key: "redpanda.request_timeout", kind: kindDuration},
	{key: "redpanda.request_retries", kind: kindInt},
	{key: "redpanda.tls.enabled", kind: kindBool, contract: "REDPANDA_TLS"},
	{key: "redpanda.tls.skip_cert_verify", kind: kindBool},
	{key: "redpanda.tls.root_cas_file", kind: kindString},
	{key: "redpanda.tls.client_cert_file", kind: kindString},
	{key: "redpanda.tls.client_key_file", kind: kindString},
	{key: "redpanda.sasl.mechanism", kind: kindString, contract: "REDPANDA_SASL_MECHANISM"},
	{key: "redpanda.sasl.user", kind: kindString, contract: "REDPANDA_USERNAME"},
	{key: "redpanda.sasl.password", kind: kindSecret, contract: "REDPANDA_PASSWORD"},
	{key: "redpanda.sasl.password_file", kind: kindString},
	{key: "database.url", kind: kindURL, contract: "DATABASE_URL"},
	{key: "database.password", kind: kindSecret},
	{key: "database.password_file", kind: kindString},
	{key: "database.pool_size", kind: kindInt},
	{key: "schema_registry.url", kind: kindString, contract: "SCHEMA_REGISTRY_URL"},
	{key: "schema_registry.username", kind: kindString, contract: "SCHEMA_REGISTRY_USERNAME"},
	{key: "schema_registry.password", kind: kindSecret, contract: "SCHEMA_REGISTRY_PASSWORD"},
	{key: "schema_registry.password_file", kind: kindString},
}

// Keys with a password/password_file pair, of which the higher layer wins.
const (
	keySASLPassword     = "redpanda.sasl.password"
	keySASLPasswordFile = "redpanda.sasl.password_file"
	keyDBPassword       = "database.password"
	keyDBPasswordFile   = "database.password_file"
	keySRPassword       = "schema_registry.password"
	keySRPasswordFile   = "schema_registry.password_file"
	keyMechanism        = "redpanda.sasl.mechanism"
)

// specOf returns the spec of key.
func specOf(key string) (keySpec, bool) {
	for _, s := range keySpecs {
		if s.key == key {
			return s, true
		}
	}
	return keySpec{}, false
}

// EnvName returns the QIFLOW_ variable of a key: QIFLOW_ and the key in
// upper case, dots replaced by underscores.
func EnvName(key string) string {
	return "QIFLOW_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// normalize checks a value of the spec's kind, as read from YAML (typed) or
// from the environment or a flag (a string), and returns it in the type the
// Profile field has.
func (s keySpec) normalize(v any) (any, error) {
	switch s.kind {
	case kindList:
		return normalizeList(v)
	case kindBool:
		switch b := v.(type) {
		case bool:
			return b, nil
		case string:
			parsed, err := strconv.ParseBool(strings.TrimSpace(b))
			if err != nil {
				return nil, fmt.Errorf("%q is not true or false", b)
			}
			return parsed, nil
		}
		return nil, fmt.Errorf("%v is not true or false", v)
	case kindInt:
		switch n := v.(type) {
		case int:
			return n, nil
		case int64:
			return int(n), nil
		case uint64:
			return int(n), nil
		case string:
			parsed, err := strconv.Atoi(strings.TrimSpace(n))
			if err != nil {
				return nil, fmt.Errorf("%q is not an integer", n)
			}
			return parsed, nil
		}
		return nil, fmt.Errorf("%v is not an integer", v)
	case kindDuration:
		switch d := v.(type) {
		case time.Duration:
			return d, nil
		case string:
			parsed, err := time.ParseDuration(strings.TrimSpace(d))
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration such as 10s or 1m30s", d)
			}
			return parsed, nil
		}
		return nil, fmt.Errorf("%v is not a duration such as 10s or 1m30s", v)
	}
	var str string
	switch x := v.(type) {
	case string:
		str = x
	case int, int64, uint64, float64, bool:
		str = fmt.Sprint(x)
	default:
		return nil, fmt.Errorf("want a string, not %T", v)
	}
	if s.key == keyMechanism {
		return normalizeMechanism(str)
	}
	return str, nil
}

func normalizeList(v any) ([]string, error) {
	var items []string
	switch l := v.(type) {
	case string:
		items = []string{l}
	case []string:
		items = l
	case []any:
		for _, item := range l {
			str, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("list item %v is not a string", item)
			}
			items = append(items, str)
		}
	default:
		return nil, fmt.Errorf("want a list or a comma-separated string, not %T", v)
	}
	// Each item may hold several comma-separated entries, as in
	// REDPANDA_BROKERS and the plugins' seed_brokers.
	out := []string{}
	for _, item := range items {
		for _, s := range strings.Split(item, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func normalizeMechanism(m string) (string, error) {
	switch upper := strings.ToUpper(strings.TrimSpace(m)); upper {
	case "":
		return "", nil
	case "NONE":
		return MechanismNone, nil
	case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
		return upper, nil
	}
	return "", fmt.Errorf("unknown SASL mechanism %q: want none, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", m)
}

// builtin holds the built-in profiles: what qiflow uses when no profile
// file is found. They equal the sections of the shipped qiflow.yaml (a test
// holds them together), and name every key.
var builtin = map[string]map[string]any{
	Development: {
		"redpanda.brokers":              []string{"localhost:9092"},
		"redpanda.client_id":            "qiflow",
		"redpanda.dial_timeout":         10 * time.Second,
		"redpanda.request_timeout":      10 * time.Second,
		"redpanda.request_retries":      20,
		"redpanda.tls.enabled":          false,
		"redpanda.tls.skip_cert_verify": false,
		"redpanda.tls.root_cas_file":    "",
		"redpanda.tls.client_cert_file": "",
		"redpanda.tls.client_key_file":  "",
		"redpanda.sasl.mechanism":       "",
		"redpanda.sasl.user":            "",
		"redpanda.sasl.password":        "",
		"redpanda.sasl.password_file":   "",
		"database.url":                  "postgres://postgres@localhost:5432/qiflow",
		"database.password":             "",
		"database.password_file":        "",
		"database.pool_size":            4,
		"schema_registry.url":           "http://localhost:8081",
		"schema_registry.username":      "",
		"schema_registry.password":      "",
		"schema_registry.password_file": "",
	},
	Staging: {
		"redpanda.brokers":              []string{"redpanda:9093"},
		"redpanda.client_id":            "qiflow-staging",
		"redpanda.dial_timeout":         10 * time.Second,
		"redpanda.request_timeout":      15 * time.Second,
		"redpanda.request_retries":      20,
		"redpanda.tls.enabled":          true,
		"redpanda.tls.skip_cert_verify": false,
		"redpanda.tls.root_cas_file":    "",
		"redpanda.tls.client_cert_file": "",
		"redpanda.tls.client_key_file":  "",
		"redpanda.sasl.mechanism":       MechanismScramSHA512,
		"redpanda.sasl.user":            "",
		"redpanda.sasl.password":        "",
		"redpanda.sasl.password_file":   "",
		"database.url":                  "postgres://qiflow@timescaledb:5432/qiflow?sslmode=require",
		"database.password":             "",
		"database.password_file":        "",
		"database.pool_size":            8,
		"schema_registry.url":           "https://redpanda:8081",
		"schema_registry.username":      "",
		"schema_registry.password":      "",
		"schema_registry.password_file": "",
	},
	Production: {
		"redpanda.brokers":              []string{"redpanda-0:9093", "redpanda-1:9093", "redpanda-2:9093"},
		"redpanda.client_id":            "qiflow-production",
		"redpanda.dial_timeout":         15 * time.Second,
		"redpanda.request_timeout":      30 * time.Second,
		"redpanda.request_retries":      30,
		"redpanda.tls.enabled":          true,
		"redpanda.tls.skip_cert_verify": false,
		"redpanda.tls.root_cas_file":    "",
		"redpanda.tls.client_cert_file": "",
		"redpanda.tls.client_key_file":  "",
		"redpanda.sasl.mechanism":       MechanismScramSHA512,
		"redpanda.sasl.user":            "",
		"redpanda.sasl.password":        "",
		"redpanda.sasl.password_file":   "",
		"database.url":                  "postgres://qiflow@timescaledb:5432/qiflow?sslmode=verify-full",
		"database.password":             "",
		"database.password_file":        "",
		"database.pool_size":            16,
		"schema_registry.url":           "https://redpanda-0:8081",
		"schema_registry.username":      "",
		"schema_registry.password":      "",
		"schema_registry.password_file": "",
	},
}
