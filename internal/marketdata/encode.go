package marketdata

import (
	"encoding/json"
	"strconv"
	"time"
)

// Fixed is an exact decimal, Units × 10^-Scale, for producers of the wire
// format. It encodes as a decimal string with exactly Scale places, so
// "0.00000001" stays what it is and a column's scale is never exceeded.
type Fixed struct {
	Units int64
	Scale int
}

// String returns f as a decimal literal, e.g. {6723412345678, 8} →
// "67234.12345678".
func (f Fixed) String() string { return string(f.Append(nil)) }

// Append appends f as a decimal literal, without quotes.
func (f Fixed) Append(dst []byte) []byte {
	u := uint64(f.Units)
	if f.Units < 0 {
		dst = append(dst, '-')
		u = -u
	}
	if f.Scale <= 0 {
		return strconv.AppendUint(dst, u, 10)
	}
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], u, 10)
	for len(digits) <= f.Scale {
		digits = append([]byte{'0'}, digits...)
	}
	point := len(digits) - f.Scale
	dst = append(dst, digits[:point]...)
	dst = append(dst, '.')
	return append(dst, digits[point:]...)
}

// PriceMessage is a price message of the wire format. Optional fields are
// nil when absent.
type PriceMessage struct {
	CoinID      string
	Symbol      string
	ExchangeID  string
	USDPrice    Fixed
	LastUpdated time.Time
	MarketCap   *Fixed
	Volume24h   *Fixed
	Change24h   *Fixed
	Change7d    *Fixed
	Source      string
	Attribution string
}

// AppendJSON appends m as one JSON object with camelCase keys and decimal
// strings.
func (m *PriceMessage) AppendJSON(dst []byte) []byte {
	o := object{dst: dst}
	o.text("coinId", m.CoinID)
	o.text("symbol", m.Symbol)
	o.text("exchangeId", m.ExchangeID)
	o.decimal("usdPrice", m.USDPrice)
	o.optionalDecimal("marketCap", m.MarketCap)
	o.optionalDecimal("volume24h", m.Volume24h)
	o.optionalDecimal("change24h", m.Change24h)
	o.optionalDecimal("change7d", m.Change7d)
	o.timestamp("lastUpdated", m.LastUpdated)
	o.text("source", m.Source)
	o.text("attribution", m.Attribution)
	return o.close()
}

// OHLCVMessage is a candle message of the wire format.
type OHLCVMessage struct {
	CoinID      string
	ExchangeID  string
	Timestamp   time.Time
	Open        Fixed
	High        Fixed
	Low         Fixed
	Close       Fixed
	Volume      Fixed
	Timeframe   string
	Source      string
	Attribution string
}

// AppendJSON appends m as one JSON object with camelCase keys and decimal
// strings.
func (m *OHLCVMessage) AppendJSON(dst []byte) []byte {
	o := object{dst: dst}
	o.text("coinId", m.CoinID)
	o.text("exchangeId", m.ExchangeID)
	o.timestamp("timestamp", m.Timestamp)
	o.decimal("open", m.Open)
	o.decimal("high", m.High)
	o.decimal("low", m.Low)
	o.decimal("close", m.Close)
	o.decimal("volume", m.Volume)
	o.text("timeframe", m.Timeframe)
	o.text("source", m.Source)
	o.text("attribution", m.Attribution)
	return o.close()
}

// AnalyticsMessage is a market analytics message of the wire format. An
// empty ExchangeID leaves the key out: market-wide figures, stored as
// GlobalExchange.
type AnalyticsMessage struct {
	Timestamp              time.Time
	ExchangeID             string
	TotalMarketCap         Fixed
	TotalVolume            Fixed
	BTCDominance           Fixed
	ETHDominance           *Fixed
	ActiveCryptocurrencies int32
	Markets                int32
	MarketCapChange24h     Fixed
	Source                 string
	Attribution            string
}

// AppendJSON appends m as one JSON object with camelCase keys and decimal
// strings.
func (m *AnalyticsMessage) AppendJSON(dst []byte) []byte {
	o := object{dst: dst}
	o.timestamp("timestamp", m.Timestamp)
	if m.ExchangeID != "" {
		o.text("exchangeId", m.ExchangeID)
	}
	o.decimal("totalMarketCap", m.TotalMarketCap)
	o.decimal("totalVolume", m.TotalVolume)
	o.decimal("btcDominance", m.BTCDominance)
	o.optionalDecimal("ethDominance", m.ETHDominance)
	o.integer("activeCryptocurrencies", int64(m.ActiveCryptocurrencies))
	o.integer("markets", int64(m.Markets))
	o.decimal("marketCapChange24h", m.MarketCapChange24h)
	o.text("source", m.Source)
	o.text("attribution", m.Attribution)
	return o.close()
}

// timestampLayout is RFC 3339 with milliseconds, the precision of the
// seed's feeds.
const timestampLayout = "2006-01-02T15:04:05.000Z07:00"

// object appends the members of one JSON object.
type object struct {
	dst  []byte
	open bool
}

func (o *object) key(k string) {
	if o.open {
		o.dst = append(o.dst, ',')
	} else {
		o.dst = append(o.dst, '{')
		o.open = true
	}
	o.dst = append(o.dst, '"')
	o.dst = append(o.dst, k...)
	o.dst = append(o.dst, '"', ':')
}

func (o *object) text(k, v string) {
	o.key(k)
	o.dst = appendString(o.dst, v)
}

func (o *object) decimal(k string, v Fixed) {
	o.key(k)
	o.dst = append(o.dst, '"')
	o.dst = v.Append(o.dst)
	o.dst = append(o.dst, '"')
}

func (o *object) optionalDecimal(k string, v *Fixed) {
	if v != nil {
		o.decimal(k, *v)
	}
}

func (o *object) integer(k string, v int64) {
	o.key(k)
	o.dst = strconv.AppendInt(o.dst, v, 10)
}

func (o *object) timestamp(k string, t time.Time) {
	o.key(k)
	o.dst = append(o.dst, '"')
	o.dst = t.UTC().AppendFormat(o.dst, timestampLayout)
	o.dst = append(o.dst, '"')
}

func (o *object) close() []byte {
	if !o.open {
		return append(o.dst, '{', '}')
	}
	return append(o.dst, '}')
}

// appendString appends s as a JSON string. Plain ASCII, the common case,
// is copied as is; anything else is escaped by encoding/json.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' {
			quoted, _ := json.Marshal(s)
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
