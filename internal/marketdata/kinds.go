package marketdata

import (
	"slices"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/decimal"
)

// Kind is one message type of the wire format and the table row it becomes.
type Kind struct {
	Name    string
	Table   string
	Columns []string
	// fields are the wire names of the message's fields, in the order
	// build takes them.
	fields []string
}

// build turns a message's fields into a row and validates it: the one row
// path of every format (JSON, Avro, Protobuf, JSON Schema). It calls the
// kind's builder directly, not through a func value, so that w stays on
// the caller's stack and the hot path allocates nothing.
func (k *Kind) build(w []wireField, row []datum.Datum) error {
	switch k {
	case Price:
		return buildPrice(w, row)
	case OHLCV:
		return buildOHLCV(w, row)
	case Analytics:
		return buildAnalytics(w, row)
	}
	panic("marketdata: unknown kind " + k.Name)
}

// DecodeInto turns one message into a row of len(Columns) values, in the
// order of Columns, or returns a BUSINESS error that names the field and
// the rule it breaks. Text values alias data. It allocates nothing for a
// message of the usual shape, so that a caller reusing row decodes without
// garbage.
func (k *Kind) DecodeInto(data []byte, row []datum.Datum) error {
	var w [maxFields]wireField
	if err := decodeObject(data, k.fields, w[:len(k.fields)]); err != nil {
		return err
	}
	return k.build(w[:len(k.fields)], row[:len(k.Columns)])
}

// Fields are the wire names of the kind's fields (camelCase, as in the JSON
// wire format), in the order DecodeFields takes their values.
func (k *Kind) Fields() []string { return k.fields }

// DecodeFields is DecodeInto for a message a binary format (Avro, Protobuf)
// has already split into its fields: values[i] is the field named
// Fields()[i], as Null (absent), Text, Decimal, Int or Time. The row is
// validated by the same rules, with the same error codes, as a JSON message
// with those values; a Float is refused, since a binary float is not an
// exact decimal. Text values alias the values' bytes.
func (k *Kind) DecodeFields(values []datum.Datum, row []datum.Datum) error {
	var w [maxFields]wireField
	for i := range k.fields {
		w[i] = wireField{value: values[i], binary: true}
	}
	return k.build(w[:len(k.fields)], row[:len(k.Columns)])
}

// maxFields is the most wire fields a kind has.
const maxFields = 11

// Decode is DecodeInto for code off the hot path: the row's values as
// time.Time, string, pgtype.Numeric, int32, or nil for an absent optional
// field.
func (k *Kind) Decode(data []byte) ([]any, error) {
	row := make([]datum.Datum, len(k.Columns))
	if err := k.DecodeInto(data, row); err != nil {
		return nil, err
	}
	values := make([]any, len(row))
	for i, d := range row {
		values[i] = d.Go()
		if d.Kind == datum.Int {
			values[i] = int32(d.Int) // the wire format's whole numbers are 32-bit
		}
	}
	return values, nil
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
	fields: priceFields,
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

func buildPrice(w []wireField, row []datum.Datum) error {
	d := decoder{}
	row[0] = d.timestamp("lastUpdated", w[pLastUpdated])
	row[1] = d.text("coinId", w[pCoinID])
	row[2] = d.text("symbol", w[pSymbol])
	row[3] = d.exchange(w[pExchangeID])
	row[4] = d.positive("usdPrice", w[pUSDPrice])
	row[5] = d.optionalNumber("marketCap", w[pMarketCap])
	row[6] = d.optionalNumber("volume24h", w[pVolume24h])
	row[7] = d.optionalNumber("change24h", w[pChange24h])
	row[8] = d.optionalNumber("change7d", w[pChange7d])
	row[9] = d.text("source", w[pSource])
	row[10] = d.text("attribution", w[pAttribution])
	return d.err
}

// OHLCV is one candle of a coin on one exchange.
var OHLCV = &Kind{
	Name:  "ohlcv",
	Table: "crypto_ohlcv",
	Columns: []string{"timestamp", "coin_id", "exchange_id", "timeframe",
		"open", "high", "low", "close", "volume", "source", "attribution"},
	fields: ohlcvFields,
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

func buildOHLCV(w []wireField, row []datum.Datum) error {
	d := decoder{}
	row[0] = d.timestamp("timestamp", w[oTimestamp])
	row[1] = d.text("coinId", w[oCoinID])
	row[2] = d.exchange(w[oExchangeID])
	row[3] = d.text("timeframe", w[oTimeframe])
	row[4], row[5] = d.positive("open", w[oOpen]), d.positive("high", w[oHigh])
	row[6], row[7] = d.positive("low", w[oLow]), d.positive("close", w[oClose])
	row[8] = d.number("volume", w[oVolume])
	row[9], row[10] = d.text("source", w[oSource]), d.text("attribution", w[oAttribution])
	if d.err != nil {
		return d.err
	}
	if timeframe := row[3].Bytes; !slices.Contains(Timeframes, string(timeframe)) {
		return validation("timeframe %q is not one of %v", timeframe, Timeframes)
	}
	o, h, l, c, volume := row[4].Dec, row[5].Dec, row[6].Dec, row[7].Dec, row[8].Dec
	if h.Cmp(o) < 0 || h.Cmp(c) < 0 {
		return validation("high %s is below open %s or close %s", h, o, c)
	}
	if l.Cmp(o) > 0 || l.Cmp(c) > 0 {
		return validation("low %s is above open %s or close %s", l, o, c)
	}
	if volume.Sign() < 0 {
		return validation("volume must be >= 0, got %s", volume)
	}
	return nil
}

// Analytics are market-wide figures, globally or for one exchange.
var Analytics = &Kind{
	Name:  "analytics",
	Table: "crypto_market_analytics",
	Columns: []string{"timestamp", "exchange_id", "total_market_cap", "total_volume", "btc_dominance",
		"eth_dominance", "active_cryptocurrencies", "markets", "market_cap_change_24h", "source", "attribution"},
	fields: analyticsFields,
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

// globalExchange is GlobalExchange as the bytes of a text datum.
var globalExchange = []byte(GlobalExchange)

func buildAnalytics(w []wireField, row []datum.Datum) error {
	d := decoder{}
	row[0] = d.timestamp("timestamp", w[aTimestamp])
	row[1] = datum.OfText(globalExchange)
	if !w[aExchangeID].isNull() {
		row[1] = d.exchange(w[aExchangeID])
	}
	row[2] = d.number("totalMarketCap", w[aTotalMarketCap])
	row[3] = d.number("totalVolume", w[aTotalVolume])
	row[4] = d.dominance("btcDominance", w[aBTCDominance])
	row[5] = datum.Datum{}
	if !w[aETHDominance].isNull() {
		row[5] = d.dominance("ethDominance", w[aETHDominance])
	}
	row[6] = d.integer("activeCryptocurrencies", w[aActiveCryptocurrencies])
	row[7] = d.integer("markets", w[aMarkets])
	row[8] = d.number("marketCapChange24h", w[aMarketCapChange24h])
	row[9] = d.text("source", w[aSource])
	row[10] = d.text("attribution", w[aAttribution])
	return d.err
}

// decoder decodes fields one after another and keeps the first error, so a
// row is filled in one readable run of assignments.
type decoder struct{ err error }

func (d *decoder) fail(err error) datum.Datum {
	if d.err == nil {
		d.err = err
	}
	return datum.Datum{}
}

func (d *decoder) text(field string, r wireField) datum.Datum {
	s, err := text(field, r)
	if err != nil {
		return d.fail(err)
	}
	return datum.OfText(s)
}

func (d *decoder) exchange(r wireField) datum.Datum {
	s, err := text("exchangeId", r)
	if err != nil {
		return d.fail(err)
	}
	return datum.OfText(normalizeExchange(s))
}

func (d *decoder) timestamp(field string, r wireField) datum.Datum {
	t, err := timestamp(field, r)
	if err != nil {
		return d.fail(err)
	}
	return datum.OfTime(t)
}

func (d *decoder) number(field string, r wireField) datum.Datum {
	n, err := number(field, r)
	if err != nil {
		return d.fail(err)
	}
	return datum.OfDecimal(n)
}

// optionalNumber decodes a number that may be absent or null.
func (d *decoder) optionalNumber(field string, r wireField) datum.Datum {
	if r.isNull() {
		return datum.Datum{}
	}
	return d.number(field, r)
}

func (d *decoder) integer(field string, r wireField) datum.Datum {
	v, err := integer(field, r)
	if err != nil {
		return d.fail(err)
	}
	return datum.OfInt(v)
}

func (d *decoder) positive(field string, r wireField) datum.Datum {
	n, err := number(field, r)
	if err == nil {
		err = positive(field, n)
	}
	if err != nil {
		return d.fail(err)
	}
	return datum.OfDecimal(n)
}

var hundred = decimal.FromInt64(100)

func (d *decoder) dominance(field string, r wireField) datum.Datum {
	n, err := number(field, r)
	if err == nil && (n.Sign() < 0 || n.Cmp(hundred) > 0) {
		err = validation("%s must be in [0, 100], got %s", field, n)
	}
	if err != nil {
		return d.fail(err)
	}
	return datum.OfDecimal(n)
}
