package marketdatainput

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	wire "github.com/qicore/qiflow/internal/marketdata"
)

// Message kinds, as internal/marketdata names them.
const (
	kindPrice     = "price"
	kindOHLCV     = "ohlcv"
	kindAnalytics = "analytics"
)

// Reasons a message is deliberately bad; they are the values of the
// market_data_bad metadata key.
const (
	badJSON            = "bad_json"
	badNegativePrice   = "negative_price"
	badUnknownExchange = "unknown_exchange"
)

// unknownExchange is the exchange id of unknown_exchange messages: one no
// alias table maps.
const unknownExchange = "unlisted-exchange"

// Attribution of every message.
const (
	source      = "market_data"
	attribution = "qiflow synthetic feed"
)

// Decimal places of the wire format's columns (pipelines/schema.yaml).
const (
	priceScale   = 8 // numeric(20,8)
	moneyScale   = 2 // numeric(24,2)
	percentScale = 4 // numeric(10,4), numeric(7,4)
	volumeScale  = 8 // numeric(28,8)
)

// Simulation constants: one round is one minute of market time.
const (
	roundLength      = time.Minute
	minuteVolatility = 0.0008 // ≈ 3% a day
	spreadVolatility = 0.0005 // how far an exchange's price sits from the market
	tickNoise        = 0.0002 // an exchange's price wobble from minute to minute
	intraMinuteSteps = 4
	minutesPerDay    = 24 * 60
	minutesPerWeek   = 7 * minutesPerDay
)

// timeframeLengths are the candle timeframes of the wire format.
var timeframeLengths = map[string]time.Duration{
	"1m": time.Minute, "5m": 5 * time.Minute, "15m": 15 * time.Minute,
	"1h": time.Hour, "4h": 4 * time.Hour, "1d": 24 * time.Hour, "1w": 7 * 24 * time.Hour,
}

// generatorConfig is the generator's parsed configuration.
type generatorConfig struct {
	coins      int
	exchanges  []string
	kinds      []string
	timeframes []string
	// badPerMillion is the share of bad messages in parts per million.
	badPerMillion int64
	seed          uint64
	start         time.Time
}

// generated is one message of the feed.
type generated struct {
	kind  string
	value []byte
	// bad is why the message is deliberately bad, or empty.
	bad string
}

// candle accumulates one OHLCV bucket, prices in units of 10^-8.
type candle struct {
	start                  time.Time
	open, high, low, close int64
	volume                 float64 // coins traded
	set                    bool
}

func (c *candle) add(start time.Time, open, high, low, closing int64, volume float64) {
	if !c.set {
		*c = candle{start: start, open: open, high: high, low: low, close: closing, volume: volume, set: true}
		return
	}
	c.high, c.low, c.close = max(c.high, high), min(c.low, low), closing
	c.volume += volume
}

// market is one coin on one exchange.
type market struct {
	spread float64 // fixed offset from the coin's price
	price  float64 // last price
	ticks  int64   // last price in units of 10^-8
	share  float64 // share of the coin's volume
	// candles are the open buckets, by timeframe index.
	candles []candle
}

// coinState is one coin's market-wide state.
type coinState struct {
	coin
	price        float64
	ref24h       float64 // price a day ago, tracked as a moving reference
	ref7d        float64 // price a week ago
	volumeFactor float64
	markets      []market // by exchange
}

// generator is the pure core of the market_data input: a deterministic
// random walk of prices, the candles built from it and the analytics
// summed from it, encoded in the wire format. It is not safe for
// concurrent use.
type generator struct {
	cfg   generatorConfig
	rng   *rand.Rand
	coins []coinState
	emit  map[string]bool
	round int64
	queue []generated
	seq   int64 // messages handed out so far
}

func newGenerator(cfg generatorConfig) (*generator, error) {
	if cfg.coins < 1 {
		return nil, fmt.Errorf("coins must be at least 1, got %d", cfg.coins)
	}
	if len(cfg.exchanges) == 0 {
		return nil, fmt.Errorf("exchanges must not be empty")
	}
	if cfg.badPerMillion < 0 || cfg.badPerMillion > 1_000_000 {
		return nil, fmt.Errorf("bad share must be in [0, 1]")
	}
	g := &generator{
		cfg:  cfg,
		rng:  rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x6a09e667f3bcc909)),
		emit: map[string]bool{},
	}
	for _, k := range cfg.kinds {
		if _, ok := wire.Kinds[k]; !ok {
			return nil, fmt.Errorf("kind %q is not one of price, ohlcv, analytics", k)
		}
		g.emit[k] = true
	}
	if len(g.emit) == 0 {
		return nil, fmt.Errorf("kinds must not be empty")
	}
	for _, tf := range cfg.timeframes {
		if _, ok := timeframeLengths[tf]; !ok {
			return nil, fmt.Errorf("timeframe %q is not one of %v", tf, wire.Timeframes)
		}
	}
	for i := range cfg.coins {
		c := coinState{coin: makeCoin(i, g.rng)}
		c.price = c.coin.price
		c.ref24h = c.price * math.Exp(g.rng.NormFloat64()*0.03)
		c.ref7d = c.price * math.Exp(g.rng.NormFloat64()*0.08)
		c.volumeFactor = 1
		var weights float64
		for e := range cfg.exchanges {
			weights += exchangeWeight(e)
		}
		for e := range cfg.exchanges {
			m := market{spread: g.rng.NormFloat64() * spreadVolatility, share: exchangeWeight(e) / weights,
				candles: make([]candle, len(cfg.timeframes))}
			m.price = c.price * (1 + m.spread)
			m.ticks = units(m.price, priceScale)
			c.markets = append(c.markets, m)
		}
		g.coins = append(g.coins, c)
	}
	return g, nil
}

// makeCoin returns the i-th coin: a real one from the table, or a made-up
// small one with a random price.
func makeCoin(i int, rng *rand.Rand) coin {
	if i < len(coins) {
		return coins[i]
	}
	price := math.Exp(rng.Float64()*12 - 8) // 0.0003 to 160 USD
	return coin{
		id:     fmt.Sprintf("coin-%d", i+1),
		symbol: fmt.Sprintf("C%d", i+1),
		price:  price,
		supply: 1e9 * math.Exp(rng.Float64()*4),
		volume: 1e7 * math.Exp(rng.Float64()*4),
	}
}

// units returns x in units of 10^-scale, at least 1: a price is never
// rounded to zero.
func units(x float64, scale int) int64 {
	return max(int64(math.Round(x*math.Pow10(scale))), 1)
}

// next returns the next message of the feed.
func (g *generator) next() generated {
	for len(g.queue) == 0 {
		g.step()
	}
	m := g.queue[0]
	g.queue = g.queue[1:]
	return m
}

// isBad says whether message seq of the feed is a bad one. It spreads them
// evenly, and the first n messages hold exactly ⌊n × share⌋ bad ones.
func (g *generator) isBad(seq int64) bool {
	return (seq+1)*g.cfg.badPerMillion/1_000_000 > seq*g.cfg.badPerMillion/1_000_000
}

// step simulates one minute and queues its messages: prices, then candles,
// then analytics.
func (g *generator) step() {
	g.queue = g.queue[:0:0]
	at := g.cfg.start.Add(time.Duration(g.round) * roundLength)
	g.round++
	for ci := range g.coins {
		c := &g.coins[ci]
		c.price *= math.Exp(g.rng.NormFloat64() * minuteVolatility)
		c.ref24h *= math.Pow(c.price/c.ref24h, 1.0/minutesPerDay)
		c.ref7d *= math.Pow(c.price/c.ref7d, 1.0/minutesPerWeek)
		c.volumeFactor = math.Min(math.Max(c.volumeFactor*math.Exp(g.rng.NormFloat64()*0.01), 0.5), 2)
		for e := range c.markets {
			g.stepMarket(c, e, at)
		}
	}
	if g.emit[kindAnalytics] {
		g.analytics(at, -1)
		for e := range g.cfg.exchanges {
			g.analytics(at, e)
		}
	}
	// Prices were queued per market together with its candles; put every
	// price first, as a feed would publish them.
	slices.SortStableFunc(g.queue, func(a, b generated) int { return kindOrder(a.kind) - kindOrder(b.kind) })
	for i := range g.queue {
		g.finish(&g.queue[i])
	}
}

func kindOrder(k string) int {
	switch k {
	case kindPrice:
		return 0
	case kindOHLCV:
		return 1
	}
	return 2
}

// stepMarket moves the price of coin c on exchange e through one minute and
// queues its price and the candles that close at its end.
func (g *generator) stepMarket(c *coinState, e int, at time.Time) {
	m := &c.markets[e]
	open := m.ticks
	high, low := open, open
	var closing int64
	for s := 1; s <= intraMinuteSteps; s++ {
		frac := float64(s) / intraMinuteSteps
		p := m.price + (c.price*(1+m.spread)-m.price)*frac
		p *= 1 + g.rng.NormFloat64()*tickNoise
		closing = units(p, priceScale)
		high, low = max(high, closing), min(low, closing)
	}
	m.price, m.ticks = float64(closing)/1e8, closing
	exchange := g.cfg.exchanges[e]
	usdPerMinute := c.volume * m.share * c.volumeFactor / minutesPerDay * (0.5 + g.rng.Float64())
	volume := usdPerMinute / m.price

	if g.emit[kindPrice] {
		marketCap := wire.Fixed{Units: units(m.price*c.supply, moneyScale), Scale: moneyScale}
		volume24h := wire.Fixed{Units: units(c.volume*m.share*c.volumeFactor, moneyScale), Scale: moneyScale}
		change24h := percent(m.price, c.ref24h)
		change7d := percent(m.price, c.ref7d)
		msg := wire.PriceMessage{
			CoinID: c.id, Symbol: c.symbol, ExchangeID: exchange,
			USDPrice:    wire.Fixed{Units: closing, Scale: priceScale},
			LastUpdated: at.Add(roundLength - time.Millisecond),
			MarketCap:   &marketCap, Volume24h: &volume24h, Change24h: &change24h, Change7d: &change7d,
			Source: source, Attribution: attribution,
		}
		g.queue = append(g.queue, generated{kind: kindPrice, value: msg.AppendJSON(nil)})
	}
	if !g.emit[kindOHLCV] {
		return
	}
	for ti, tf := range g.cfg.timeframes {
		length := timeframeLengths[tf]
		bucket := at.Truncate(length)
		cd := &m.candles[ti]
		cd.add(bucket, open, high, low, closing, volume)
		if !at.Add(roundLength).Equal(bucket.Add(length)) {
			continue
		}
		msg := wire.OHLCVMessage{
			CoinID: c.id, ExchangeID: exchange, Timestamp: cd.start, Timeframe: tf,
			Open: wire.Fixed{Units: cd.open, Scale: priceScale}, High: wire.Fixed{Units: cd.high, Scale: priceScale},
			Low: wire.Fixed{Units: cd.low, Scale: priceScale}, Close: wire.Fixed{Units: cd.close, Scale: priceScale},
			Volume: volumeFixed(cd.volume),
			Source: source, Attribution: attribution,
		}
		g.queue = append(g.queue, generated{kind: kindOHLCV, value: msg.AppendJSON(nil)})
		*cd = candle{}
	}
}

// volumeFixed is a traded amount with 8 decimal places, or with 2 when 8
// would overflow an int64: a week of a meme coin is trillions of coins.
func volumeFixed(v float64) wire.Fixed {
	if v < 1e10 {
		return wire.Fixed{Units: int64(math.Round(v * 1e8)), Scale: volumeScale}
	}
	return wire.Fixed{Units: int64(math.Round(v * 100)), Scale: 2}
}

// percent is the change from ref to now in percent, with 4 places.
func percent(now, ref float64) wire.Fixed {
	return wire.Fixed{Units: int64(math.Round((now/ref - 1) * 100 * 1e4)), Scale: percentScale}
}

// analytics queues the market analytics at the end of the minute at: over
// all exchanges (e < 0) or for exchange e. They are sums of the same prices
// and volumes the price messages carry.
func (g *generator) analytics(at time.Time, e int) {
	var total, total24h, volume, btc, eth float64
	for _, c := range g.coins {
		price, share := c.price, 1.0
		if e >= 0 {
			price, share = c.markets[e].price, c.markets[e].share
		}
		capital := price * c.supply
		total += capital
		total24h += c.ref24h * c.supply
		volume += c.volume * share * c.volumeFactor
		switch c.id {
		case "bitcoin":
			btc = capital
		case "ethereum":
			eth = capital
		}
	}
	msg := wire.AnalyticsMessage{
		Timestamp:              at.Add(roundLength - time.Millisecond),
		TotalMarketCap:         wire.Fixed{Units: units(total, moneyScale), Scale: moneyScale},
		TotalVolume:            wire.Fixed{Units: units(volume, moneyScale), Scale: moneyScale},
		BTCDominance:           wire.Fixed{Units: int64(math.Round(btc / total * 100 * 1e4)), Scale: percentScale},
		ActiveCryptocurrencies: int32(len(g.coins)),
		Markets:                int32(len(g.coins) * len(g.cfg.exchanges)),
		MarketCapChange24h:     percent(total, total24h),
		Source:                 source, Attribution: attribution,
	}
	if e >= 0 {
		msg.ExchangeID = g.cfg.exchanges[e]
		msg.Markets = int32(len(g.coins))
	}
	if eth > 0 {
		d := wire.Fixed{Units: int64(math.Round(eth / total * 100 * 1e4)), Scale: percentScale}
		msg.ETHDominance = &d
	}
	g.queue = append(g.queue, generated{kind: kindAnalytics, value: msg.AppendJSON(nil)})
}

// finish numbers a queued message and, when its turn has come, spoils it.
func (g *generator) finish(m *generated) {
	seq := g.seq
	g.seq++
	if !g.isBad(seq) {
		return
	}
	reasons := []string{badJSON, badNegativePrice, badUnknownExchange}
	if m.kind == kindAnalytics {
		reasons = []string{badJSON, badUnknownExchange}
	}
	m.bad = reasons[g.rng.IntN(len(reasons))]
	switch m.bad {
	case badJSON:
		m.value = m.value[:len(m.value)/2]
	case badNegativePrice:
		field := `"usdPrice":"`
		if m.kind == kindOHLCV {
			field = `"low":"`
		}
		m.value = insertAfter(m.value, field, "-")
	case badUnknownExchange:
		if m.kind == kindAnalytics && !contains(m.value, `"exchangeId":`) {
			m.value = insertAfter(m.value, `{`, `"exchangeId":"`+unknownExchange+`",`)
		} else {
			m.value = replaceString(m.value, `"exchangeId":"`, unknownExchange)
		}
	}
}

func contains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

// insertAfter returns b with text inserted after the first occurrence of
// anchor.
func insertAfter(b []byte, anchor, text string) []byte {
	i := bytes.Index(b, []byte(anchor))
	if i < 0 {
		return b
	}
	i += len(anchor)
	out := make([]byte, 0, len(b)+len(text))
	out = append(out, b[:i]...)
	out = append(out, text...)
	return append(out, b[i:]...)
}

// replaceString returns b with the string value that follows prefix (which
// ends with its opening quote) replaced by value.
func replaceString(b []byte, prefix, value string) []byte {
	i := bytes.Index(b, []byte(prefix))
	if i < 0 {
		return b
	}
	i += len(prefix)
	end := bytes.IndexByte(b[i:], '"')
	if end < 0 {
		return b
	}
	out := make([]byte, 0, len(b)+len(value))
	out = append(out, b[:i]...)
	out = append(out, value...)
	return append(out, b[i+end:]...)
}
