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

type priceWire struct {
	CoinID      raw `json:"coinId"`
	Symbol      raw `json:"symbol"`
	ExchangeID  raw `json:"exchangeId"`
	USDPrice    raw `json:"usdPrice"`
	LastUpdated raw `json:"lastUpdated"`
	Source      raw `json:"source"`
	Attribution raw `json:"attribution"`
	MarketCap   raw `json:"marketCap"`
	Volume24h   raw `json:"volume24h"`
	Change24h   raw `json:"change24h"`
	Change7d    raw `json:"change7d"`
}

func decodePrice(data []byte) ([]any, error) {
	var w priceWire
	if err := decodeObject(data, &w); err != nil {
		return nil, err
	}
	d := decoder{}
	row := []any{
		d.timestamp("lastUpdated", w.LastUpdated),
		d.text("coinId", w.CoinID),
		d.text("symbol", w.Symbol),
		d.exchange(w.ExchangeID),
		d.positive("usdPrice", w.USDPrice),
		d.optionalNumber("marketCap", w.MarketCap),
		d.optionalNumber("volume24h", w.Volume24h),
		d.optionalNumber("change24h", w.Change24h),
		d.optionalNumber("change7d", w.Change7d),
		d.text("source", w.Source),
		d.text("attribution", w.Attribution),
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

type ohlcvWire struct {
	CoinID      raw `json:"coinId"`
	ExchangeID  raw `json:"exchangeId"`
	Timestamp   raw `json:"timestamp"`
	Open        raw `json:"open"`
	High        raw `json:"high"`
	Low         raw `json:"low"`
	Close       raw `json:"close"`
	Volume      raw `json:"volume"`
	Timeframe   raw `json:"timeframe"`
	Source      raw `json:"source"`
	Attribution raw `json:"attribution"`
}

func decodeOHLCV(data []byte) ([]any, error) {
	var w ohlcvWire
	if err := decodeObject(data, &w); err != nil {
		return nil, err
	}
	d := decoder{}
	ts := d.timestamp("timestamp", w.Timestamp)
	coin := d.text("coinId", w.CoinID)
	exchange := d.exchange(w.ExchangeID)
	timeframe := d.text("timeframe", w.Timeframe)
	open, high := d.positive("open", w.Open), d.positive("high", w.High)
	low, closing := d.positive("low", w.Low), d.positive("close", w.Close)
	volume := d.number("volume", w.Volume)
	row := []any{ts, coin, exchange, timeframe, open, high, low, closing, volume,
		d.text("source", w.Source), d.text("attribution", w.Attribution)}
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

type analyticsWire struct {
	Timestamp              raw `json:"timestamp"`
	TotalMarketCap         raw `json:"totalMarketCap"`
	TotalVolume            raw `json:"totalVolume"`
	BTCDominance           raw `json:"btcDominance"`
	ActiveCryptocurrencies raw `json:"activeCryptocurrencies"`
	Markets                raw `json:"markets"`
	MarketCapChange24h     raw `json:"marketCapChange24h"`
	Source                 raw `json:"source"`
	Attribution            raw `json:"attribution"`
	ExchangeID             raw `json:"exchangeId"`
	ETHDominance           raw `json:"ethDominance"`
}

func decodeAnalytics(data []byte) ([]any, error) {
	var w analyticsWire
	if err := decodeObject(data, &w); err != nil {
		return nil, err
	}
	d := decoder{}
	exchange := any(GlobalExchange)
	if !w.ExchangeID.isNull() {
		exchange = d.exchange(w.ExchangeID)
	}
	row := []any{
		d.timestamp("timestamp", w.Timestamp),
		exchange,
		d.number("totalMarketCap", w.TotalMarketCap),
		d.number("totalVolume", w.TotalVolume),
		d.dominance("btcDominance", w.BTCDominance),
		nil,
		d.integer("activeCryptocurrencies", w.ActiveCryptocurrencies),
		d.integer("markets", w.Markets),
		d.number("marketCapChange24h", w.MarketCapChange24h),
		d.text("source", w.Source),
		d.text("attribution", w.Attribution),
	}
	if !w.ETHDominance.isNull() {
		row[5] = d.dominance("ethDominance", w.ETHDominance)
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
