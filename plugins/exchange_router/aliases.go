package exchangerouter

// defaultExchanges are the exchanges the router knows unless configured
// otherwise: the seed platform's venues, by their canonical ids.
var defaultExchanges = []string{
	"binance", "coinbase", "kraken", "bybit", "okx", "kucoin", "bitfinex", "bitstamp",
	"gemini", "htx", "gateio", "bitget", "mexc", "crypto-com", "upbit", "binance-us",
}

// defaultAliases map the spellings feeds use to canonical exchange ids.
// Keys are compared after trimming and lower-casing, so "Binance" and
// "BINANCE" need no entry of their own.
var defaultAliases = map[string]string{
	"binance.com":       "binance",
	"binance-global":    "binance",
	"binance_global":    "binance",
	"binance.us":        "binance-us",
	"binanceus":         "binance-us",
	"coinbase-pro":      "coinbase",
	"coinbase_pro":      "coinbase",
	"coinbasepro":       "coinbase",
	"coinbase pro":      "coinbase",
	"coinbase.com":      "coinbase",
	"coinbase-exchange": "coinbase",
	"gdax":              "coinbase",
	"kraken.com":        "kraken",
	"bybit.com":         "bybit",
	"okex":              "okx",
	"okx.com":           "okx",
	"kucoin.com":        "kucoin",
	"bitfinex.com":      "bitfinex",
	"bitstamp.net":      "bitstamp",
	"gemini.com":        "gemini",
	"huobi":             "htx",
	"huobi-global":      "htx",
	"huobi.com":         "htx",
	"htx.com":           "htx",
	"gate.io":           "gateio",
	"gate":              "gateio",
	"bitget.com":        "bitget",
	"mexc.com":          "mexc",
	"crypto.com":        "crypto-com",
	"cryptocom":         "crypto-com",
	"upbit.com":         "upbit",
}
