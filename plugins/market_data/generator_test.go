package marketdatainput

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/decimal"
	wire "github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var testStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testGenerator(t testing.TB, mutate func(*generatorConfig)) *generator {
	t.Helper()
	cfg := generatorConfig{
		coins: 20, exchanges: defaultExchanges, kinds: []string{kindPrice, kindOHLCV, kindAnalytics},
		timeframes: wire.Timeframes, seed: 42, start: testStart,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := newGenerator(cfg)
	require.NoError(t, err)
	return g
}

func TestSameSeedSameFeed(t *testing.T) {
	a, b := testGenerator(t, nil), testGenerator(t, nil)
	other := testGenerator(t, func(c *generatorConfig) { c.seed = 43 })
	differs := false
	for i := range 20_000 {
		ma, mb, mo := a.next(), b.next(), other.next()
		require.Equal(t, ma, mb, "message %d", i)
		differs = differs || !bytes.Equal(ma.value, mo.value)
	}
	assert.True(t, differs, "another seed gives another feed")
}

// decodeUntil decodes generated messages until each kind has at least n.
func decodeUntil(t *testing.T, g *generator, n int, check func(kind string, msg []byte, row []any)) map[string]int {
	counts := map[string]int{}
	for counts[kindPrice] < n || counts[kindOHLCV] < n || counts[kindAnalytics] < n {
		m := g.next()
		row, err := wire.Kinds[m.kind].Decode(m.value)
		require.NoError(t, err, "%s", m.value)
		counts[m.kind]++
		if check != nil {
			check(m.kind, m.value, row)
		}
	}
	return counts
}

func TestEveryGoodMessageDecodesAndIsConsistent(t *testing.T) {
	g := testGenerator(t, func(c *generatorConfig) { c.exchanges = defaultExchanges[:2] })
	num := func(v any) pgtype.Numeric { return v.(pgtype.Numeric) }
	timeframes := map[string]int{}
	counts := decodeUntil(t, g, 3000, func(kind string, msg []byte, row []any) {
		switch kind {
		case kindPrice:
			assert.Positive(t, decimal.Sign(num(row[4])), "price > 0")
			var m struct{ USDPrice string }
			require.NoError(t, json.Unmarshal(msg, &m))
			assert.Regexp(t, `^\d+\.\d{8}$`, m.USDPrice, "prices have 8 decimal places")
		case kindOHLCV:
			open, high, low, closing := num(row[4]), num(row[5]), num(row[6]), num(row[7])
			assert.Positive(t, decimal.Sign(low))
			assert.LessOrEqual(t, decimal.Compare(low, open), 0, "low <= open")
			assert.LessOrEqual(t, decimal.Compare(low, closing), 0, "low <= close")
			assert.GreaterOrEqual(t, decimal.Compare(high, open), 0, "open <= high")
			assert.GreaterOrEqual(t, decimal.Compare(high, closing), 0, "close <= high")
			timeframes[row[3].(string)]++
		case kindAnalytics:
			btc := num(row[4])
			assert.Positive(t, decimal.Sign(btc))
			assert.Equal(t, int32(20), row[6], "active cryptocurrencies")
		}
	})
	t.Logf("decoded %v; candles by timeframe %v", counts, timeframes)
	for _, tf := range []string{"1m", "5m", "15m", "1h", "4h"} {
		assert.Positive(t, timeframes[tf], "candles of %s", tf)
	}
}

func TestCandlesAggregateTheMinutes(t *testing.T) {
	g := testGenerator(t, func(c *generatorConfig) {
		c.coins, c.exchanges, c.kinds, c.timeframes = 1, []string{"binance"}, []string{kindOHLCV}, []string{"1m", "5m"}
	})
	type bar struct{ Open, High, Low, Close, Volume, Timeframe, Timestamp string }
	var minutes []bar
	for range 12 {
		var b bar
		require.NoError(t, json.Unmarshal(g.next().value, &b))
		if b.Timeframe == "1m" {
			minutes = append(minutes, b)
			continue
		}
		require.Len(t, minutes, 5, "a 5m candle follows its five minutes")
		assert.Equal(t, minutes[0].Open, b.Open)
		assert.Equal(t, minutes[4].Close, b.Close)
		assert.Equal(t, minutes[0].Timestamp, b.Timestamp)
		for i := 1; i < 5; i++ {
			assert.Equal(t, minutes[i-1].Close, minutes[i].Open, "a minute opens at the previous close")
		}
		minutes = nil
	}
}

func TestAnalyticsAreSummedFromThePrices(t *testing.T) {
	g := testGenerator(t, func(c *generatorConfig) { c.coins, c.exchanges = 3, []string{"binance", "kraken"} })
	caps := map[string]float64{} // per exchange, from price messages
	for {
		m := g.next()
		var v struct {
			ExchangeID     string  `json:"exchangeId"`
			MarketCap      float64 `json:"marketCap,string"`
			TotalMarketCap float64 `json:"totalMarketCap,string"`
			BTCDominance   float64 `json:"btcDominance,string"`
		}
		require.NoError(t, json.Unmarshal(m.value, &v))
		if m.kind == kindPrice {
			caps[v.ExchangeID] += v.MarketCap
			continue
		}
		if m.kind == kindAnalytics && v.ExchangeID == "kraken" {
			assert.InEpsilon(t, caps["kraken"], v.TotalMarketCap, 1e-9, "kraken's total is the sum of its market caps")
			assert.Greater(t, v.BTCDominance, 50.0)
			assert.Less(t, v.BTCDominance, 100.0)
			return
		}
	}
}

func TestBadShareIsExactAndEveryBadMessageIsRejectable(t *testing.T) {
	for _, share := range []float64{0, 0.001, 0.05, 0.5, 1} {
		g := testGenerator(t, func(c *generatorConfig) { c.badPerMillion = int64(share * 1e6) })
		const n = 20_000
		bad, reasons := 0, map[string]int{}
		for range n {
			m := g.next()
			if m.bad == "" {
				_, err := wire.Kinds[m.kind].Decode(m.value)
				require.NoError(t, err, "%s", m.value)
				continue
			}
			bad++
			reasons[m.bad]++
			row, err := wire.Kinds[m.kind].Decode(m.value)
			if m.bad == badUnknownExchange {
				require.NoError(t, err, "%s", m.value)
				assert.Contains(t, row, any(unknownExchange))
			} else {
				assert.Error(t, err, "%s: %s", m.bad, m.value)
			}
		}
		assert.Equal(t, int(share*n), bad, "share %v", share)
		if share >= 0.05 {
			assert.Len(t, reasons, 3, "every kind of bad message appears: %v", reasons)
		}
	}
}

func TestInvalidGeneratorConfigs(t *testing.T) {
	for name, mutate := range map[string]func(*generatorConfig){
		"no coins":          func(c *generatorConfig) { c.coins = 0 },
		"no exchanges":      func(c *generatorConfig) { c.exchanges = nil },
		"unknown kind":      func(c *generatorConfig) { c.kinds = []string{"trades"} },
		"unknown timeframe": func(c *generatorConfig) { c.timeframes = []string{"2h"} },
	} {
		cfg := generatorConfig{coins: 1, exchanges: []string{"x"}, kinds: []string{kindPrice}, timeframes: []string{"1m"}}
		mutate(&cfg)
		_, err := newGenerator(cfg)
		assert.Error(t, err, name)
	}
}

func TestStartTimeMustBeOnAWholeMinute(t *testing.T) {
	conf, err := inputSpec().ParseYAML(`start_time: "2026-01-01T00:00:30Z"`, nil)
	require.NoError(t, err)
	_, err = newFeedFromConfig(conf)
	require.Error(t, err, "a start off the minute would never close a candle")
	assert.Contains(t, err.Error(), "whole minute")

	conf, err = inputSpec().ParseYAML(`start_time: "2026-01-01T00:01:00Z"`, nil)
	require.NoError(t, err)
	_, err = newFeedFromConfig(conf)
	require.NoError(t, err)
}
