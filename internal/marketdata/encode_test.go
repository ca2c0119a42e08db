package marketdata

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFixedFormatsExactlyScalePlaces(t *testing.T) {
	cases := []struct {
		f    Fixed
		want string
	}{
		{Fixed{6723412345678, 8}, "67234.12345678"},
		{Fixed{1, 8}, "0.00000001"},
		{Fixed{-12345, 4}, "-1.2345"},
		{Fixed{0, 2}, "0.00"},
		{Fixed{42, 0}, "42"},
		{Fixed{-7, 3}, "-0.007"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, c.f.String())
	}
}

func TestEncodedMessagesDecode(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 123e6, time.UTC)
	change := Fixed{-12345, 4}
	price := (&PriceMessage{CoinID: "bitcoin", Symbol: "BTC", ExchangeID: "binance", USDPrice: Fixed{6723412345678, 8},
		LastUpdated: at, Change24h: &change, Source: "market_data", Attribution: `say "hi"`}).AppendJSON(nil)
	candle := (&OHLCVMessage{CoinID: "bitcoin", ExchangeID: "kraken", Timestamp: at, Open: Fixed{10, 0}, High: Fixed{12, 0},
		Low: Fixed{9, 0}, Close: Fixed{11, 0}, Volume: Fixed{5, 8}, Timeframe: "1m", Source: "s", Attribution: "a"}).AppendJSON(nil)
	global := (&AnalyticsMessage{Timestamp: at, TotalMarketCap: Fixed{250000000000012, 2}, TotalVolume: Fixed{1, 2},
		BTCDominance: Fixed{543000, 4}, ActiveCryptocurrencies: 20, Markets: 160, MarketCapChange24h: Fixed{-5, 1},
		Source: "s", Attribution: "a"}).AppendJSON(nil)

	for kind, msg := range map[*Kind][]byte{Price: price, OHLCV: candle, Analytics: global} {
		require.True(t, json.Valid(msg), "%s", msg)
		row, err := kind.Decode(msg)
		require.NoError(t, err, "%s", msg)
		require.Len(t, row, len(kind.Columns))
	}
	row, _ := Price.Decode(price)
	assert.Equal(t, at, row[0])
	assert.Equal(t, "67234.12345678", str(row[4]))
	assert.Equal(t, "-1.2345", str(row[7]))
	assert.Nil(t, row[5], "absent optional fields are left out")
	assert.Equal(t, `say "hi"`, row[10])
	row, _ = Analytics.Decode(global)
	assert.Equal(t, GlobalExchange, row[1], "an empty exchange id encodes market-wide analytics")
	assert.Equal(t, "2500000000000.12", str(row[2]))
}
