// Package marketdatainput is the market_data input: a synthetic but
// realistic crypto market feed in qiflow's wire format, for trying
// pipelines without an exchange connection.
package marketdatainput

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	wire "github.com/qicore/qiflow/internal/marketdata"
)

// Input field names.
const (
	mdFieldCoins      = "coins"
	mdFieldExchanges  = "exchanges"
	mdFieldRate       = "rate"
	mdFieldCount      = "count"
	mdFieldSeed       = "seed"
	mdFieldKinds      = "kinds"
	mdFieldTimeframes = "timeframes"
	mdFieldBadShare   = "bad_share"
	mdFieldStartTime  = "start_time"
	mdFieldBatchSize  = "batch_size"
)

// Metadata keys the input sets.
const (
	// MetaKind is price, ohlcv or analytics.
	MetaKind = "market_data_kind"
	// MetaBad is set on deliberately bad messages, to bad_json,
	// negative_price or unknown_exchange.
	MetaBad = "market_data_bad"
)

// rateUnlimited is the rate value that means "as fast as possible".
const rateUnlimited = "unlimited"

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Summary("Generates a synthetic, realistic crypto market feed: prices, OHLCV candles and market analytics in qiflow's wire format.").
		Description(`
Every round simulates one minute of market time for each coin on each exchange:

- a **price** per coin and exchange: a geometric random walk (about 3% volatility a day) from the coin's real price, with a small fixed spread per exchange; prices have 8 decimal places, and each price carries market cap, 24h volume and 24h / 7d change;
- **OHLCV candles** built from the same walk: a 1m candle every round, and candles of the longer timeframes when their bucket (aligned to the Unix epoch) closes; open is the previous close, and low ≤ open, close ≤ high always;
- **analytics**: market-wide (no `+"`exchangeId`"+`, stored as `+"`global`"+`) and per exchange, summed from the same prices and volumes, with BTC and ETH dominance.

Messages of a round come prices first, then candles, then analytics. Timestamps start at `+"`start_time`"+` and advance one minute per round, however fast the rounds are generated. Decimals are JSON strings with as many places as their columns have.

With a `+"`seed`"+`, the feed is deterministic. With `+"`bad_share`"+`, that share of the messages is spoiled, evenly spread and exact: of the first n messages, ⌊n × bad_share⌋ are bad. A bad message is invalid JSON, has a negative price, or names an exchange no router knows (`+"`"+unknownExchange+"`"+`); it carries the reason in the metadata key `+"`"+MetaBad+"`"+`. Every message carries its kind in `+"`"+MetaKind+"`"+`.`).
		Fields(
			service.NewIntField(mdFieldCoins).
				Description("How many coins: the largest real coins first (bitcoin, ethereum, tether, ...), then made-up smaller ones beyond the 20 known.").
				Default(10).
				LintRule(`root = if this < 1 { [ "coins must be at least 1" ] }`),
			service.NewStringListField(mdFieldExchanges).
				Description("Exchanges, by canonical id; earlier ones trade more.").
				Default(anyList(defaultExchanges)).
				Example([]string{"binance", "coinbase", "kraken"}),
			service.NewStringField(mdFieldRate).
				Description("Messages per second, or `unlimited`.").
				Default("1000").
				Example("50000").
				Example(rateUnlimited).
				LintRule(`root = if this != "unlimited" && this.number().catch(-1) <= 0 { [ "rate must be a positive number or unlimited" ] }`),
			service.NewIntField(mdFieldCount).
				Description("Messages to generate before the input ends; 0 means no end.").
				Default(0).
				LintRule(`root = if this < 0 { [ "count must not be negative" ] }`),
			service.NewIntField(mdFieldSeed).
				Description("Random seed. The same seed and start_time give the same feed; without one, every run differs.").
				Optional().
				Example(42),
			service.NewStringListField(mdFieldKinds).
				Description("Which kinds of message to emit: `price`, `ohlcv` and `analytics`.").
				Default([]any{"price", "ohlcv", "analytics"}).
				Example([]string{"price"}).
				LintRule(`root = if this.type() == "string" && !["price", "ohlcv", "analytics"].contains(this) { [ "unknown kind " + this ] }`),
			service.NewStringListField(mdFieldTimeframes).
				Description("Candle timeframes to build.").
				Default(anyList(wire.Timeframes)).
				Example([]string{"1m", "1h"}),
			service.NewFloatField(mdFieldBadShare).
				Description("Share of deliberately bad messages, in [0, 1], for testing dead-letter paths.").
				Default(0.0).
				Example(0.01).
				LintRule(`root = if this < 0 || this > 1 { [ "bad_share must be in [0, 1]" ] }`),
			service.NewStringField(mdFieldStartTime).
				Description("RFC 3339 market time of the first round. Empty means now, truncated to the minute.").
				Default("").
				Example("2026-01-01T00:00:00Z"),
			service.NewIntField(mdFieldBatchSize).
				Description("Most messages per batch. At low rates batches are smaller, about 10 ms of messages each.").
				Default(500).
				Advanced().
				LintRule(`root = if this < 1 { [ "batch_size must be at least 1" ] }`),
		).
		Example("A demo feed", "Ten coins on eight exchanges at 1,000 messages a second, with 1% bad messages.", `
input:
  market_data:
    coins: 10
    rate: "1000"
    bad_share: 0.01
`)
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func init() {
	err := service.RegisterBatchInput("market_data", inputSpec(),
		func(conf *service.ParsedConfig, _ *service.Resources) (service.BatchInput, error) {
			in, err := newFeedFromConfig(conf)
			if err != nil {
				return nil, err
			}
			return service.AutoRetryNacksBatched(in), nil
		})
	if err != nil {
		panic(err)
	}
}

// feed is the market_data input.
type feed struct {
	gen       *generator
	rate      float64 // messages per second; 0 means unlimited
	count     int64   // 0 means no end
	batchSize int
	started   time.Time
	sent      int64
}

func newFeedFromConfig(conf *service.ParsedConfig) (*feed, error) {
	var cfg generatorConfig
	var err error
	if cfg.coins, err = conf.FieldInt(mdFieldCoins); err != nil {
		return nil, err
	}
	if cfg.exchanges, err = conf.FieldStringList(mdFieldExchanges); err != nil {
		return nil, err
	}
	if cfg.kinds, err = conf.FieldStringList(mdFieldKinds); err != nil {
		return nil, err
	}
	if cfg.timeframes, err = conf.FieldStringList(mdFieldTimeframes); err != nil {
		return nil, err
	}
	share, err := conf.FieldFloat(mdFieldBadShare)
	if err != nil {
		return nil, err
	}
	if share < 0 || share > 1 {
		return nil, fmt.Errorf("%s must be in [0, 1], got %v", mdFieldBadShare, share)
	}
	cfg.badPerMillion = int64(math.Round(share * 1e6))
	if conf.Contains(mdFieldSeed) {
		seed, err := conf.FieldInt(mdFieldSeed)
		if err != nil {
			return nil, err
		}
		cfg.seed = uint64(seed)
	} else {
		cfg.seed = uint64(time.Now().UnixNano())
	}
	start, err := conf.FieldString(mdFieldStartTime)
	if err != nil {
		return nil, err
	}
	cfg.start = time.Now().UTC().Truncate(time.Minute)
	if start != "" {
		if cfg.start, err = time.Parse(time.RFC3339, start); err != nil {
			return nil, fmt.Errorf("%s: %w", mdFieldStartTime, err)
		}
		if !cfg.start.Equal(cfg.start.Truncate(time.Minute)) {
			return nil, fmt.Errorf("%s %s must be on a whole minute: candles close on minute boundaries", mdFieldStartTime, start)
		}
	}
	gen, err := newGenerator(cfg)
	if err != nil {
		return nil, err
	}
	f := &feed{gen: gen}
	rate, err := conf.FieldString(mdFieldRate)
	if err != nil {
		return nil, err
	}
	if f.rate, err = parseRate(rate); err != nil {
		return nil, err
	}
	count, err := conf.FieldInt(mdFieldCount)
	if err != nil {
		return nil, err
	}
	f.count = int64(count)
	if f.batchSize, err = conf.FieldInt(mdFieldBatchSize); err != nil {
		return nil, err
	}
	if f.count < 0 || f.batchSize < 1 {
		return nil, fmt.Errorf("%s must not be negative and %s must be at least 1", mdFieldCount, mdFieldBatchSize)
	}
	return f, nil
}

// parseRate reads messages per second, or unlimited as 0.
func parseRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == rateUnlimited {
		return 0, nil
	}
	r, err := strconv.ParseFloat(s, 64)
	if err != nil || r <= 0 || math.IsInf(r, 0) {
		return 0, fmt.Errorf("%s must be a positive number of messages per second or %s, got %q", mdFieldRate, rateUnlimited, s)
	}
	return r, nil
}

// Connect starts the clock of the rate limit.
func (f *feed) Connect(context.Context) error {
	f.started = time.Now()
	return nil
}

// ReadBatch returns the next batch, waiting as long as the rate demands.
func (f *feed) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	n := int64(f.batchSize)
	if f.rate > 0 {
		// About 10 ms of messages per batch, so a low rate stays smooth.
		n = min(n, max(1, int64(f.rate/100)))
	}
	if f.count > 0 {
		if f.sent >= f.count {
			return nil, nil, service.ErrEndOfInput
		}
		n = min(n, f.count-f.sent)
	}
	if f.rate > 0 {
		due := f.started.Add(time.Duration(float64(f.sent+n) / f.rate * float64(time.Second)))
		if wait := time.Until(due); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
	}
	batch := make(service.MessageBatch, n)
	for i := range batch {
		m := f.gen.next()
		msg := service.NewMessage(m.value)
		msg.MetaSetMut(MetaKind, m.kind)
		if m.bad != "" {
			msg.MetaSetMut(MetaBad, m.bad)
		}
		batch[i] = msg
	}
	f.sent += n
	return batch, func(context.Context, error) error { return nil }, nil
}

// Close does nothing; the feed holds no resources.
func (f *feed) Close(context.Context) error { return nil }
