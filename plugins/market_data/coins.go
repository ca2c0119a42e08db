package marketdatainput

// coin is a coin the generator starts from: realistic prices, supplies and
// daily volumes, so that market caps, dominance and decimals look like a
// real feed.
type coin struct {
	id     string
	symbol string
	price  float64 // USD
	supply float64 // circulating
	volume float64 // USD traded in 24 hours, over all exchanges
}

// coins are the first coins of the feed, by market cap. Beyond them the
// generator makes up smaller coins (coin-21, C21, ...).
var coins = []coin{
	{"bitcoin", "BTC", 67234.12, 19_700_000, 28e9},
	{"ethereum", "ETH", 3512.45, 120_200_000, 14e9},
	{"tether", "USDT", 1.0002, 112e9, 45e9},
	{"binancecoin", "BNB", 585.31, 147_500_000, 1.6e9},
	{"solana", "SOL", 172.84, 462_000_000, 2.9e9},
	{"usd-coin", "USDC", 0.9999, 33e9, 6e9},
	{"ripple", "XRP", 0.5231, 55.6e9, 1.2e9},
	{"dogecoin", "DOGE", 0.1623, 145e9, 1.1e9},
	{"toncoin", "TON", 7.12, 2.5e9, 0.3e9},
	{"cardano", "ADA", 0.4521, 35.7e9, 0.4e9},
	{"shiba-inu", "SHIB", 0.00002413, 589e12, 0.6e9},
	{"avalanche-2", "AVAX", 35.82, 394_000_000, 0.5e9},
	{"tron", "TRX", 0.1189, 87.4e9, 0.35e9},
	{"polkadot", "DOT", 7.03, 1.44e9, 0.2e9},
	{"chainlink", "LINK", 16.42, 587_000_000, 0.4e9},
	{"bitcoin-cash", "BCH", 478.6, 19_700_000, 0.3e9},
	{"near", "NEAR", 6.91, 1.07e9, 0.35e9},
	{"litecoin", "LTC", 83.2, 74_600_000, 0.45e9},
	{"polygon", "MATIC", 0.7134, 9.3e9, 0.3e9},
	{"pepe", "PEPE", 0.00001234, 420.69e12, 0.9e9},
}

// defaultExchanges are the venues of the feed, by canonical id, and their
// share of the volume.
var defaultExchanges = []string{"binance", "coinbase", "kraken", "bybit", "okx", "kucoin", "bitfinex", "bitstamp"}

// exchangeWeight is an exchange's relative share of the volume: the first
// exchanges of the list trade the most.
func exchangeWeight(i int) float64 {
	return 1 / float64(i+2)
}
