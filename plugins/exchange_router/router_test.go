package exchangerouter

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// eightExchanges are the exchanges of the order and balance tests.
var eightExchanges = []string{"binance", "coinbase", "kraken", "bybit", "okx", "kucoin", "bitfinex", "bitstamp"}

func symbols(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("SYM%d", i)
	}
	return out
}

// testRouter builds a router from the processor's YAML, as a user would.
func testRouter(t testing.TB, yaml string) *router {
	t.Helper()
	conf, err := processorSpec().ParseYAML(yaml, nil)
	require.NoError(t, err)
	cfg, err := parseRouterConfig(conf)
	require.NoError(t, err)
	r, err := newRouter(cfg)
	require.NoError(t, err)
	return r
}

func TestExchangeIDsAreNormalisedByAliases(t *testing.T) {
	reject := testRouter(t, "topic: crypto-prices\npartitions: 12")
	fallback := testRouter(t, "topic: crypto-prices\npartitions: 12\nunknown_exchange: default\ndefault_exchange: other")
	custom := testRouter(t, "topic: crypto-prices\npartitions: 12\naliases: { binance-futures: binance }")

	cases := []struct {
		name       string
		router     *router
		exchangeID string // the JSON value of exchangeId; empty means absent
		want       string // canonical exchange, or "" when it fails
		wantCode   string
		rewritten  bool
	}{
		{"canonical", reject, `"binance"`, "binance", "", false},
		{"upper case", reject, `"BINANCE"`, "binance", "", true},
		{"mixed case and space", reject, `" Binance "`, "binance", "", true},
		{"domain alias", reject, `"binance.com"`, "binance", "", true},
		{"gdax", reject, `"gdax"`, "coinbase", "", true},
		{"coinbase-pro", reject, `"Coinbase-Pro"`, "coinbase", "", true},
		{"okex", reject, `"okex"`, "okx", "", true},
		{"escaped", reject, `"krak\u0065n"`, "kraken", "", true},
		{"configured alias", custom, `"Binance-Futures"`, "binance", "", true},
		{"unknown, reject policy", reject, `"nowhere-exchange"`, "", CodeUnknownExchange, false},
		{"unknown, default policy", fallback, `"nowhere-exchange"`, "other", "", false},
		{"missing", reject, ``, "", CodeMissingExchange, false},
		{"null", reject, `null`, "", CodeMissingExchange, false},
		{"empty", reject, `""`, "", CodeMissingExchange, false},
		{"blank", fallback, `"  "`, "", CodeMissingExchange, false},
		{"not a string", reject, `42`, "", CodeInvalidExchange, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := `{"coinId":"bitcoin","symbol":"BTC","usdPrice":"1.5"}`
			if c.exchangeID != "" {
				msg = `{"coinId":"bitcoin","symbol":"BTC","exchangeId":` + c.exchangeID + `,"usdPrice":"1.5"}`
			}
			d, err := c.router.route([]byte(msg))
			if c.wantCode != "" {
				require.Error(t, err)
				assert.Equal(t, result.Business, result.CategoryOf(err), "%v", err)
				assert.True(t, errorsIsCode(err, c.wantCode), "want code %s, got %v", c.wantCode, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, d.route.name)
			assert.Equal(t, c.want+":BTC", d.key)
			if c.rewritten {
				assert.JSONEq(t, `{"coinId":"bitcoin","symbol":"BTC","exchangeId":"`+c.want+`","usdPrice":"1.5"}`, string(d.normalized))
			} else {
				assert.Nil(t, d.normalized, "the message is left as it is")
			}
		})
	}
}

func errorsIsCode(err error, code string) bool {
	return result.Classify(err).Code == code
}

func TestMessagesThatAreNotJSONObjectsFail(t *testing.T) {
	r := testRouter(t, "topic: crypto-prices\npartitions: 12")
	for _, msg := range []string{``, `[1,2]`, `{"exchangeId"`, `{"a":"unterminated`, `not json`} {
		_, err := r.route([]byte(msg))
		assert.True(t, errorsIsCode(err, CodeInvalidJSON) || errorsIsCode(err, CodeMissingExchange), "%q: %v", msg, err)
		assert.Equal(t, result.Business, result.CategoryOf(err), "%q", msg)
	}
}

func TestSymbolFallsBackToCoinAndThenToTheExchangeAlone(t *testing.T) {
	r := testRouter(t, "topic: crypto-ohlcv\npartitions: 24")
	cases := map[string]string{
		`{"exchangeId":"kraken","symbol":"ETH","coinId":"ethereum"}`: "kraken:ETH",
		`{"exchangeId":"kraken","coinId":"ethereum"}`:                "kraken:ethereum",
		`{"exchangeId":"kraken","symbol":"","coinId":"ethereum"}`:    "kraken:ethereum",
		`{"exchangeId":"kraken","totalVolume":"1"}`:                  "kraken",
	}
	for msg, key := range cases {
		d, err := r.route([]byte(msg))
		require.NoError(t, err, msg)
		assert.Equal(t, key, d.key, msg)
	}
}

func TestNestedExchangeField(t *testing.T) {
	r := testRouter(t, "topic: t\npartitions: 4\nexchange: venue.id\nsymbol: [ pair.base ]")
	d, err := r.route([]byte(`{"venue":{"name":"x","id":"GDAX"},"pair":{"base":"BTC"}}`))
	require.NoError(t, err)
	assert.Equal(t, "coinbase:BTC", d.key)
	assert.Equal(t, `{"venue":{"name":"x","id":"coinbase"},"pair":{"base":"BTC"}}`, string(d.normalized))
}

func TestAddingAnExchangeMovesNoExistingExchange(t *testing.T) {
	list := func(names []string) string { return "[" + strings.Join(names, ", ") + "]" }
	before := testRouter(t, fmt.Sprintf("topic: crypto-prices\npartitions: 12\nexchanges: %s", list(eightExchanges)))
	after := testRouter(t, fmt.Sprintf("topic: crypto-prices\npartitions: 12\nexchanges: %s", list(append(slices.Clone(eightExchanges), "gemini"))))
	for _, ex := range eightExchanges {
		assert.Equal(t, before.table[ex].ranked, after.table[ex].ranked, "%s keeps its partitions", ex)
		for _, sym := range symbols(50) {
			msg := []byte(`{"exchangeId":"` + ex + `","symbol":"` + sym + `"}`)
			b, err := before.route(msg)
			require.NoError(t, err)
			a, err := after.route(msg)
			require.NoError(t, err)
			assert.Equal(t, b.partition, a.partition, "%s:%s", ex, sym)
		}
	}
}

func TestHotExchangeSpreadsOverMorePartitionsMovingOnlyToTheNewOnes(t *testing.T) {
	normal := testRouter(t, "topic: crypto-prices\npartitions: 12")
	hot := testRouter(t, "topic: crypto-prices\npartitions: 12\nhot_exchanges: { binance: 12 }")
	assert.Len(t, normal.table["binance"].ranked, 6, "half the partitions by default")
	assert.Len(t, hot.table["binance"].ranked, 12)
	assert.Equal(t, normal.table["binance"].ranked, hot.table["binance"].ranked[:6], "a larger share extends the list")
	assert.Equal(t, normal.table["kraken"].ranked, hot.table["kraken"].ranked, "other exchanges do not move")
	moved := 0
	for _, sym := range symbols(1000) {
		msg := []byte(`{"exchangeId":"binance","symbol":"` + sym + `"}`)
		n, _ := normal.route(msg)
		h, _ := hot.route(msg)
		if n.partition != h.partition {
			moved++
			assert.NotContains(t, normal.table["binance"].ranked, h.partition, "a symbol moves only to an added partition")
		}
	}
	assert.InDelta(t, 500, moved, 100, "about half the symbols move to the six added partitions")
}

func TestTopicStrategy(t *testing.T) {
	r := testRouter(t, "strategy: topic\ntopic: crypto-prices.{exchange}\npartitions: 6\nunknown_exchange: default")
	d, err := r.route([]byte(`{"exchangeId":"GDAX","symbol":"BTC"}`))
	require.NoError(t, err)
	assert.Equal(t, "crypto-prices.coinbase", d.route.topic)
	assert.Len(t, d.route.ranked, 3)
	d, err = r.route([]byte(`{"exchangeId":"somewhere","symbol":"BTC"}`))
	require.NoError(t, err)
	assert.Equal(t, "crypto-prices.other", d.route.topic)
	assert.Equal(t, "crypto-prices.dlq", r.cfg.deadLetterTopic)
}

func TestInvalidConfigurationsAreRejected(t *testing.T) {
	cases := map[string]string{
		"placeholder without topic strategy": "topic: crypto-prices.{exchange}\npartitions: 12",
		"topic strategy without placeholder": "strategy: topic\ntopic: crypto-prices\npartitions: 12",
		"no partitions":                      "topic: t\npartitions: 0",
		"hot exchange not known":             "topic: t\npartitions: 12\nhot_exchanges: { nowhere: 3 }",
		"hot share too large":                "topic: t\npartitions: 12\nhot_exchanges: { binance: 13 }",
		"alias to an unknown exchange":       "topic: t\npartitions: 12\naliases: { x: nowhere }",
		"alias that is an exchange":          "topic: t\npartitions: 12\naliases: { kraken: binance }",
		"share larger than the topic":        "topic: t\npartitions: 12\npartitions_per_exchange: 13",
	}
	for name, yaml := range cases {
		conf, err := processorSpec().ParseYAML(yaml, nil)
		if err == nil {
			var cfg routerConfig
			if cfg, err = parseRouterConfig(conf); err == nil {
				_, err = newRouter(cfg)
			}
		}
		assert.Error(t, err, name)
	}
}

// The router and the ingest decoders read a repeated key alike (the last
// wins), so a rejected exchange cannot hide behind a known one.
func TestARepeatedExchangeKeyIsReadAsIngestReadsIt(t *testing.T) {
	r := testRouter(t, "topic: crypto-prices\npartitions: 12")
	_, err := r.route([]byte(`{"exchangeId":"gdax","symbol":"BTC","exchangeId":"unlisted-exchange"}`))
	assert.True(t, errorsIsCode(err, CodeUnknownExchange), "%v", err)
}
