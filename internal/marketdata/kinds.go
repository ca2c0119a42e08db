package marketdata

import (
	"slices"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qicore/qiflow/internal/decimal"
)

// Kind is one message type of the wire format and the table row it becomes.
// Decode returns the row's values in the order of Columns: time.Time,
// string, pgtype.Numeric, int32, or nil for an absent optional field.
type Kind struct {
	Name    string
	Table   string
	Columns []string
	decode  func(data []byte) ([]any, error)
}

// Decode turns one message into a row, or a BUSINESS error that names the
// field and the rule it breaks.
func (k *Kind) Decode(data []byte) ([]any, error) {
	return k.decode(data)
}

// Kinds are the three message types, by name.
var Kinds = map[string]*Kind{
	"price":     Price,
	"ohlcv":     OHLCV,
	"analytics": Analytics,
}

// Timeframes are the candle timeframes the wire format allows.
var Timeframes = []string{"1m", "5m", "15m", "1h", "4h", "1d", "1w"}

// GlobalExchange is the exchange id of market-wide analytics.
const GlobalExchange = "global"

// Price is a coin's price on one exchange.
var Price = &Kind{
	Name:  "price",
	Table: "crypto_prices",
	Columns: []string{"last_updated", "coin_id", "symbol", "exchange_id", "usd_price",
		"market_cap", "volume_24h", "change_24h", "change_7d", "source", "attribution"},
	decode: decodePrice,
}

// priceFields are the wire names of a price's fields, indexed by the p*
// constants.
var priceFields = []string{"coinId", "symbol", "exchangeId", "usdPrice", "lastUpdated", "source", "attribution",
	"marketCap", "volume24h", "change24h", "change7d"}

const (
	pCoinID = iota
	pSymbol
	pExchangeID
	pUSDPrice
	pLastUpdated
	pSource
	pAttribution
	pMarketCap
	pVolume24h
	pChange24h
	pChange7d
)

func decodePrice(data []byte) ([]any, error) {
	var w [11]raw
	if err := decodeObject(data, priceFields, w[:]); err != nil {
		return nil, err
	}
	d := decoder{}
	row := []any{
		d.timestamp("lastUpdated", w[pLastUpdated]),
		d.text("coinId", w[pCoinID]),
		d.text("symbol", w[pSymbol]),
		d.exchange(w[pExchangeID]),
		d.positive("usdPrice", w[pUSDPrice]),
		d.optionalNumber("marketCap", w[pMarketCap]),
		d.optionalNumber("volume24h", w[pVolume24h]),
		d.optionalNumber("change24h", w[pChange24h]),
		d.optionalNumber("change7d", w[pChange7d]),
		d.text("source", w[pSource]),
		d.text("attribution", w[pAttribution]),
	}
	return row, d.err
}

// OHLCV is one candle of a coin on one exchange.
var OHLCV = &Kind{
	Name:  "ohlcv",
	Table: "crypto_ohlcv",
	Columns: []string{"timestamp", "coin_id", "exchange_id", "timeframe",
		"open", "high", "low", "close", "volume", "source", "attribution"},
	decode: decodeOHLCV,
}

// ohlcvFields are the wire names of a candle's fields, indexed by the o*
// constants.
var ohlcvFields = []string{"coinId", "exchangeId", "timestamp", "open", "high", "low", "close", "volume",
	"timeframe", "source", "attribution"}

const (
	oCoinID = iota
	oExchangeID
	oTimestamp
	oOpen
	oHigh
	oLow
	oClose
	oVolume
	oTimeframe
	oSource
	oAttribution
)

func decodeOHLCV(data []byte) ([]any, error) {
	var w [11]raw
	if err := decodeObject(data, ohlcvFields, w[:]); err != nil {
		return nil, err
	}
	d := decoder{}
	ts := d.timestamp("timestamp", w[oTimestamp])
	coin := d.text("coinId", w[oCoinID])
	exchange := d.exchange(w[oExchangeID])
	timeframe := d.text("timeframe", w[oTimeframe])
	open, high := d.positive("open", w[oOpen]), d.positive("high", w[oHigh])
	low, closing := d.positive("low", w[oLow]), d.positive("close", w[oClose])
	volume := d.number("volume", w[oVolume])
	row := []any{ts, coin, exchange, timeframe, open, high, low, closing, volume,
		d.text("source", w[oSource]), d.text("attribution", w[oAttribution])}
	if d.err != nil {
		return nil, d.err
	}
	if !slices.Contains(Timeframes, timeframe.(string)) {
		return nil, validation("timeframe %q is not one of %v", timeframe, Timeframes)
	}
	o, h, l, c := open.(pgtype.Numeric), high.(pgtype.Numeric), low.(pgtype.Numeric), closing.(pgtype.Numeric)
	if decimal.Compare(h, o) < 0 || decimal.Compare(h, c) < 0 {
		return nil, validation("high %s is below open %s or close %s", decimal.String(h), decimal.String(o), decimal.String(c))
	}
	if decimal.Compare(l, o) > 0 || decimal.Compare(l, c) > 0 {
		return nil, validation("low %s is above open %s or close %s", decimal.String(l), decimal.String(o), decimal.String(c))
	}
	if decimal.Sign(volume.(pgtype.Numeric)) < 0 {
		return nil, validation("volume must be >= 0, got %s", decimal.String(volume.(pgtype.Numeric)))
	}
	return row, nil
}

// Analytics are market-wide figures, globally or for one exchange.
var Analytics = &Kind{
	Name:  "analytics",
	Table: "crypto_market_analytics",
	Columns: []string{"timestamp", "exchange_id", "total_market_cap", "total_volume", "btc_dominance",
		"eth_dominance", "active_cryptocurrencies", "markets", "market_cap_change_24h", "source", "attribution"},
	decode: decodeAnalytics,
}

// analyticsFields are the wire names of analytics' fields, indexed by the
// a* constants.
var analyticsFields = []string{"timestamp", "totalMarketCap", "totalVolume", "btcDominance", "activeCryptocurrencies",
	"markets", "marketCapChange24h", "source", "attribution", "exchangeId", "ethDominance"}

const (
	aTimestamp = iota
	aTotalMarketCap
	aTotalVolume
	aBTCDominance
	aActiveCryptocurrencies
	aMarkets
	aMarketCapChange24h
	aSource
	aAttribution
	aExchangeID
	aETHDominance
)

func decodeAnalytics(data []byte) ([]any, error) {
	var w [11]raw
	if err := decodeObject(data, analyticsFields, w[:]); err != nil {
		return nil, err
	}
	d := decoder{}
	exchange := any(GlobalExchange)
	if !w[aExchangeID].isNull() {
		exchange = d.exchange(w[aExchangeID])
	}
	row := []any{
		d.timestamp("timestamp", w[aTimestamp]),
		exchange,
		d.number("totalMarketCap", w[aTotalMarketCap]),
		d.number("totalVolume", w[aTotalVolume]),
		d.dominance("btcDominance", w[aBTCDominance]),
		nil,
		d.integer("activeCryptocurrencies", w[aActiveCryptocurrencies]),
		d.integer("markets", w[aMarkets]),
		d.number("marketCapChange24h", w[aMarketCapChange24h]),
		d.text("source", w[aSource]),
		d.text("attribution", w[aAttribution]),
	}
	if !w[aETHDominance].isNull() {
		row[5] = d.dominance("ethDominance", w[aETHDominance])
	}
	return row, d.err
}

// decoder decodes fields one after another and keeps the first error, so a
// row is built in one readable expression.
type decoder struct{ err error }

func (d *decoder) keep(v any, err error) any {
	if err != nil && d.err == nil {
		d.err = err
	}
	return v
}

func (d *decoder) text(field string, r raw) any { return d.keep(text(field, r)) }

func (d *decoder) exchange(r raw) any {
	s, err := text("exchangeId", r)
	if err != nil {
		return d.keep(nil, err)
	}
	return NormalizeExchange(s)
}

func (d *decoder) timestamp(field string, r raw) any { return d.keep(timestamp(field, r)) }

func (d *decoder) number(field string, r raw) any { return d.keep(number(field, r)) }

func (d *decoder) optionalNumber(field string, r raw) any { return d.keep(optionalNumber(field, r)) }

func (d *decoder) integer(field string, r raw) any { return d.keep(integer(field, r)) }

func (d *decoder) positive(field string, r raw) any {
	n, err := number(field, r)
	if err == nil {
		err = positive(field, n)
	}
	return d.keep(n, err)
}

var hundred, _ = decimal.Parse("100")

func (d *decoder) dominance(field string, r raw) any {
	n, err := number(field, r)
	if err == nil && (decimal.Sign(n) < 0 || decimal.Compare(n, hundred) > 0) {
		err = validation("%s must be in [0, 100], got %s", field, decimal.String(n))
	}
	return d.keep(n, err)
}
