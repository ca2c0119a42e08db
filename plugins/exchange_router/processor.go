package exchangerouter

import (
	"context"
	"maps"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/metricdoc"
	"github.com/qicore/qiflow/internal/result"
)

// Processor field names.
const (
	erFieldExchange        = "exchange"
	erFieldExchangeMapping = "exchange_mapping"
	erFieldSymbol          = "symbol"
	erFieldStrategy        = "strategy"
	erFieldTopic           = "topic"
	erFieldPartitions      = "partitions"
	erFieldShare           = "partitions_per_exchange"
	erFieldHot             = "hot_exchanges"
	erFieldExchanges       = "exchanges"
	erFieldAliases         = "aliases"
	erFieldDefaultAliases  = "default_aliases"
	erFieldUnknown         = "unknown_exchange"
	erFieldDefaultExchange = "default_exchange"
	erFieldNormalize       = "normalize_exchange"
	erFieldDeadLetterTopic = "dead_letter_topic"
)

// Metadata keys the processor sets, for the redpanda output to interpolate.
const (
	// MetaTopic is the topic of the message.
	MetaTopic = "qiflow_topic"
	// MetaKey is the record key: exchange:symbol, or the exchange alone.
	MetaKey = "qiflow_key"
	// MetaPartition is the partition, as a decimal string.
	MetaPartition = "qiflow_partition"
	// MetaExchange is the canonical exchange id the message was routed by.
	MetaExchange = "qiflow_exchange"
	// MetaDeadLetterTopic is where the message goes if it fails.
	MetaDeadLetterTopic = "qiflow_dead_letter_topic"
)

func processorSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Beta().
		Categories("Utility").
		Summary("Routes crypto market data by exchange: sets the topic, key and partition the redpanda output writes each message to.").
		Description(`
For each message the router reads the exchange id (a field, or a Bloblang mapping) and the symbol, normalises the exchange id with an alias table, and sets metadata:

- `+"`"+MetaTopic+"`"+`: the topic;
- `+"`"+MetaKey+"`"+`: `+"`exchange:symbol`"+`, or the exchange alone when the message has no symbol;
- `+"`"+MetaPartition+"`"+`: the partition, as a decimal string;
- `+"`"+MetaExchange+"`"+`: the canonical exchange id;
- `+"`"+MetaDeadLetterTopic+"`"+`: where the message goes if it fails.

With the `+"`partition`"+` strategy, every exchange owns a stable share of the topic's partitions, chosen by rendezvous hashing of the exchange and the partition; a jump hash of the symbol picks one partition of that share. All messages of one exchange and symbol therefore go to one partition, in order, and adding an exchange moves nothing of the others. With the `+"`topic`"+` strategy, each exchange has its own topic, from a template, and the symbol picks the partition.

The partition count comes from `+"`partitions`"+`; it must match the topic (`+"`qiflow topics status`"+` shows it). A message routed to a partition the topic does not have fails in the `+"`redpanda`"+` output with the BUSINESS error `+"`invalid_partition`"+`; give that output a `+"`dead_letter`"+` so that such messages are dead-lettered once and the rest of their batch is written once.

A message without an exchange id, with one that is not a string, or, under the `+"`reject`"+` policy, with an unknown one fails with a BUSINESS error. The router then also sets the dead-letter headers `+"`qiflow-error-category`, `qiflow-error-code` and `qiflow-error`"+` as metadata, so that a `+"`switch`"+` output with `+"`check: errored()`"+` can send it to `+"`@"+MetaDeadLetterTopic+"`"+`.

The router reads only the fields it needs and does not validate the rest of the message; ingest does that.`).
		Fields(
			service.NewStringField(erFieldExchange).
				Description("Path of the exchange id in the JSON message, with dots between the keys of nested objects.").
				Default("exchangeId").
				Example("exchange.id"),
			service.NewBloblangField(erFieldExchangeMapping).
				Description("Bloblang mapping whose result is the exchange id; it replaces `"+erFieldExchange+"`. Slower than a field path, and the message is not rewritten by `"+erFieldNormalize+"`.").
				Example(`root = this.exchangeId.or("global")`).
				Optional(),
			service.NewStringListField(erFieldSymbol).
				Description("Paths of the symbol, tried in order; the first non-empty string is used. A message without one is keyed by its exchange alone.").
				Default([]any{"symbol", "coinId"}).
				Example([]string{"coinId"}),
			service.NewStringAnnotatedEnumField(erFieldStrategy, map[string]string{
				strategyPartition: "One topic; each exchange owns a stable share of its partitions.",
				strategyTopic:     "One topic per exchange, from the `topic` template.",
			}).
				Description("How exchanges are kept apart.").
				Default(strategyPartition),
			service.NewStringField(erFieldTopic).
				Description("The topic, or with the `topic` strategy a template in which `{exchange}` is replaced by the canonical exchange id.").
				Example("crypto-prices").
				Example("crypto-prices.{exchange}"),
			service.NewIntField(erFieldPartitions).
				Description("Partition count of the topic (of each topic, with the `topic` strategy). It must match the cluster: a partition the topic does not have fails in the `redpanda` output with the BUSINESS error `invalid_partition`, which its `dead_letter` takes.").
				Example(12).
				LintRule(`root = if this < 1 { [ "partitions must be at least 1" ] }`),
			service.NewIntField(erFieldShare).
				Description("How many partitions each exchange spreads over. 0 means half the partitions, rounded up. More spreads load more evenly; fewer keeps a busy exchange from touching every partition.").
				Default(0).
				Advanced().
				LintRule(`root = if this < 0 { [ "partitions_per_exchange must not be negative" ] }`),
			service.NewIntMapField(erFieldHot).
				Description("Partitions per exchange for busy exchanges, overriding `"+erFieldShare+"`. Raising it moves only the symbols that go to the added partitions.").
				Default(map[string]any{}).
				Example(map[string]any{"binance": 12}),
			service.NewStringListField(erFieldExchanges).
				Description("The known exchanges, by canonical id.").
				Default(anyList(defaultExchanges)).
				Example([]string{"binance", "coinbase", "kraken"}),
			service.NewStringMapField(erFieldAliases).
				Description("Extra spellings of exchange ids, mapped to a canonical id. They are compared after trimming and lower-casing, and override the built-in aliases.").
				Default(map[string]any{}).
				Example(map[string]any{"binance-futures": "binance"}),
			service.NewBoolField(erFieldDefaultAliases).
				Description("Use the built-in aliases (`binance.com` → `binance`, `gdax` and `coinbase-pro` → `coinbase`, `okex` → `okx`, `huobi` → `htx`, `gate.io` → `gateio`, `crypto.com` → `crypto-com`, ...). Aliases whose target is not among `"+erFieldExchanges+"` are skipped.").
				Default(true).
				Advanced(),
			service.NewStringAnnotatedEnumField(erFieldUnknown, map[string]string{
				policyReject:  "Fail the message with a BUSINESS error (code `" + CodeUnknownExchange + "`), for the dead-letter topic.",
				policyDefault: "Route the message as if its exchange were `" + erFieldDefaultExchange + "`; the message keeps its exchange id.",
			}).
				Description("What to do with an exchange that is neither known nor an alias.").
				Default(policyReject),
			service.NewStringField(erFieldDefaultExchange).
				Description("The exchange unknown exchanges are routed as under the `default` policy.").
				Default("other"),
			service.NewBoolField(erFieldNormalize).
				Description("Rewrite the exchange id in the message to its canonical form when it differs (`\"GDAX\"` → `\"coinbase\"`), so that ingest stores the canonical id. Unknown exchanges are left as they are.").
				Default(true),
			service.NewStringField(erFieldDeadLetterTopic).
				Description("Value of `"+MetaDeadLetterTopic+"`. Empty means `<topic>.dlq`, with a template's `{exchange}` left out.").
				Default("").
				Advanced().
				Example("crypto-prices.dlq"),
		).
		LintRule(`root = if this.strategy.or("partition") == "topic" && !this.topic.contains("{exchange}") { [ "the topic strategy needs {exchange} in the topic" ] } else if this.strategy.or("partition") == "partition" && this.topic.contains("{exchange}") { [ "{exchange} in the topic needs strategy: topic" ] }`).
		Example("Prices into one topic", "Each exchange gets half of the 12 partitions; Binance, the busiest, gets all of them.", `
pipeline:
  processors:
    - exchange_router:
        topic: crypto-prices
        partitions: 12
        hot_exchanges: { binance: 12 }
output:
  redpanda:
    seed_brokers: [ "${REDPANDA_BROKERS:localhost:9092}" ]
    topic: ${! @qiflow_topic }
    key: ${! @qiflow_key }
    partition: ${! @qiflow_partition }
    max_in_flight: 1
`).
		Example("A topic per exchange", "Unknown exchanges go to crypto-prices.other instead of failing.", `
pipeline:
  processors:
    - exchange_router:
        strategy: topic
        topic: crypto-prices.{exchange}
        partitions: 6
        unknown_exchange: default
        default_exchange: other
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
	err := service.RegisterBatchProcessor("exchange_router", processorSpec(),
		func(conf *service.ParsedConfig, mgr *service.Resources) (service.BatchProcessor, error) {
			return newProcessorFromConfig(conf, mgr)
		})
	if err != nil {
		panic(err)
	}
}

// processor is the exchange_router processor.
type processor struct {
	router  *router
	mapping *bloblang.Executor
	routed  *service.MetricCounter
	failed  *service.MetricCounter
}

func newProcessorFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*processor, error) {
	cfg, err := parseRouterConfig(conf)
	if err != nil {
		return nil, err
	}
	r, err := newRouter(cfg)
	if err != nil {
		return nil, err
	}
	p := &processor{
		router: r,
		routed: metricdoc.Counter(mgr.Metrics(), "qiflow_exchange_router_routed", "Messages the exchange router gave a topic and partition."),
		failed: metricdoc.Counter(mgr.Metrics(), "qiflow_exchange_router_failed", "Messages the exchange router failed: an unknown exchange, or no exchange field."),
	}
	if conf.Contains(erFieldExchangeMapping) {
		if p.mapping, err = conf.FieldBloblang(erFieldExchangeMapping); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func parseRouterConfig(conf *service.ParsedConfig) (routerConfig, error) {
	var cfg routerConfig
	exchange, err := conf.FieldString(erFieldExchange)
	if err != nil {
		return cfg, err
	}
	if !conf.Contains(erFieldExchangeMapping) {
		cfg.exchangeField = strings.Split(exchange, ".")
	}
	symbols, err := conf.FieldStringList(erFieldSymbol)
	if err != nil {
		return cfg, err
	}
	for _, s := range symbols {
		cfg.symbolFields = append(cfg.symbolFields, strings.Split(s, "."))
	}
	if cfg.strategy, err = conf.FieldString(erFieldStrategy); err != nil {
		return cfg, err
	}
	if cfg.topic, err = conf.FieldString(erFieldTopic); err != nil {
		return cfg, err
	}
	if cfg.partitions, err = conf.FieldInt(erFieldPartitions); err != nil {
		return cfg, err
	}
	if cfg.share, err = conf.FieldInt(erFieldShare); err != nil {
		return cfg, err
	}
	if cfg.hot, err = conf.FieldIntMap(erFieldHot); err != nil {
		return cfg, err
	}
	if cfg.exchanges, err = conf.FieldStringList(erFieldExchanges); err != nil {
		return cfg, err
	}
	useDefaults, err := conf.FieldBool(erFieldDefaultAliases)
	if err != nil {
		return cfg, err
	}
	extra, err := conf.FieldStringMap(erFieldAliases)
	if err != nil {
		return cfg, err
	}
	cfg.aliases = map[string]string{}
	if useDefaults {
		for alias, target := range defaultAliases {
			if containsExchange(cfg.exchanges, target) && !containsExchange(cfg.exchanges, alias) {
				cfg.aliases[alias] = target
			}
		}
	}
	maps.Copy(cfg.aliases, extra)
	if cfg.unknown, err = conf.FieldString(erFieldUnknown); err != nil {
		return cfg, err
	}
	if cfg.defaultExchange, err = conf.FieldString(erFieldDefaultExchange); err != nil {
		return cfg, err
	}
	if cfg.normalize, err = conf.FieldBool(erFieldNormalize); err != nil {
		return cfg, err
	}
	if cfg.deadLetterTopic, err = conf.FieldString(erFieldDeadLetterTopic); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func containsExchange(exchanges []string, id string) bool {
	for _, e := range exchanges {
		if normalize(e) == normalize(id) {
			return true
		}
	}
	return false
}

// ProcessBatch routes every message of the batch. A message that cannot be
// routed keeps going with its error set, for the output to dead-letter.
func (p *processor) ProcessBatch(_ context.Context, batch service.MessageBatch) ([]service.MessageBatch, error) {
	var routed, failed int64
	for _, msg := range batch {
		msg.MetaSetMut(MetaDeadLetterTopic, p.router.deadLetterMeta)
		d, err := p.decide(msg)
		if err != nil {
			failed++
			reject(msg, err)
			continue
		}
		routed++
		if d.normalized != nil {
			msg.SetBytes(d.normalized)
		}
		msg.MetaSetMut(MetaTopic, d.route.topicMeta)
		msg.MetaSetMut(MetaKey, d.key)
		msg.MetaSetMut(MetaPartition, p.router.partitionMeta[d.partition])
		msg.MetaSetMut(MetaExchange, d.route.nameMeta)
	}
	p.routed.Incr(routed)
	p.failed.Incr(failed)
	return []service.MessageBatch{batch}, nil
}

func (p *processor) decide(msg *service.Message) (decision, error) {
	data, err := msg.AsBytes()
	if err != nil {
		return decision{}, result.Wrap(result.Business, CodeInvalidJSON, err, "read message")
	}
	if p.mapping == nil {
		return p.router.route(data)
	}
	// BloblangQuery, unlike BloblangQueryValue, gives the mapping the
	// message as `this`.
	res, err := msg.BloblangQuery(p.mapping)
	if err != nil {
		return decision{}, result.Wrap(result.Business, CodeMissingExchange, err, erFieldExchangeMapping+" failed")
	}
	if res == nil {
		return decision{}, result.New(result.Business, CodeMissingExchange, erFieldExchangeMapping+" deleted the exchange id")
	}
	exchange, err := res.AsBytes()
	if err != nil {
		return decision{}, result.Wrap(result.Business, CodeInvalidExchange, err, erFieldExchangeMapping+" result")
	}
	d, _, err := p.router.routeExchange(data, exchange)
	return d, err
}

// reject marks msg failed and sets the dead-letter headers as metadata.
func reject(msg *service.Message, err error) {
	msg.SetError(err)
	result.MarkDeadLetter(msg, err)
}

// Close releases nothing; the router holds no resources.
func (p *processor) Close(context.Context) error { return nil }
