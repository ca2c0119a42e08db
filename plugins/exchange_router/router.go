// Package exchangerouter is the exchange_router processor, topic
// provisioning and the `qiflow topics` command.
//
// The processor decides, for each message, the topic, key and partition the
// redpanda output writes it to, from the message's exchange and symbol, and
// sets them as metadata. The decision is pure (see assign.go) and costs well
// under a microsecond. Provisioning creates the topics of a spec file with
// kadm and reports, without changing them, topics that differ from it.
package exchangerouter

import (
	"fmt"
	"maps"
	"strconv"
	"strings"

	"github.com/qicore/qiflow/internal/result"
)

// Routing strategies.
const (
	// strategyPartition sends every exchange to one topic, on its own share
	// of the partitions.
	strategyPartition = "partition"
	// strategyTopic sends each exchange to a topic of its own.
	strategyTopic = "topic"
)

// Unknown-exchange policies.
const (
	policyReject  = "reject"
	policyDefault = "default"
)

// exchangePlaceholder is replaced by the exchange id in topic templates.
const exchangePlaceholder = "{exchange}"

// Codes of the BUSINESS errors the router returns; they go into the
// qiflow-error-code dead-letter header.
const (
	CodeMissingExchange = "missing_exchange"
	CodeInvalidExchange = "invalid_exchange"
	CodeUnknownExchange = "unknown_exchange"
	CodeInvalidJSON     = "invalid_json"
)

// routerConfig is the router's parsed configuration.
type routerConfig struct {
	// exchangeField is the path of the exchange id; nil when a mapping
	// supplies it instead.
	exchangeField []string
	// symbolFields are tried in order; the first non-empty string is the
	// symbol.
	symbolFields [][]string
	strategy     string
	// topic is the topic, or with strategyTopic a template holding
	// exchangePlaceholder.
	topic      string
	partitions int
	// share is how many partitions an exchange spreads over; 0 means half,
	// rounded up.
	share           int
	hot             map[string]int
	exchanges       []string
	aliases         map[string]string
	unknown         string
	defaultExchange string
	// normalize rewrites the exchange id in the message to its canonical
	// form when it differs.
	normalize       bool
	deadLetterTopic string
}

// exchangeRoute is everything the router needs about one exchange, worked
// out once.
type exchangeRoute struct {
	name   string
	ranked []int32
	topic  string
	// Boxed metadata values, so that setting them allocates nothing.
	nameMeta, topicMeta any
}

// router is the pure core of the exchange_router processor. It is
// immutable after newRouter and safe for concurrent use.
type router struct {
	cfg routerConfig
	// table maps canonical ids and aliases, trimmed and lower case, to
	// their routes.
	table map[string]*exchangeRoute
	// fallback routes unknown exchanges under the default policy.
	fallback       *exchangeRoute
	partitionMeta  []any
	deadLetterMeta any
}

// decision is where one message goes.
type decision struct {
	route     *exchangeRoute
	partition int32
	key       string
	// normalized is the message with its exchange id rewritten to the
	// canonical form, or nil when it needs no rewrite.
	normalized []byte
}

func newRouter(cfg routerConfig) (*router, error) {
	if cfg.partitions < 1 {
		return nil, fmt.Errorf("partitions must be at least 1, got %d", cfg.partitions)
	}
	if cfg.share == 0 {
		cfg.share = (cfg.partitions + 1) / 2
	}
	if cfg.share < 1 || cfg.share > cfg.partitions {
		return nil, fmt.Errorf("partitions_per_exchange must be in [1, %d], got %d", cfg.partitions, cfg.share)
	}
	switch cfg.strategy {
	case strategyPartition:
		if strings.Contains(cfg.topic, exchangePlaceholder) {
			return nil, fmt.Errorf("topic %q holds %s, which only the %s strategy fills", cfg.topic, exchangePlaceholder, strategyTopic)
		}
	case strategyTopic:
		if !strings.Contains(cfg.topic, exchangePlaceholder) {
			return nil, fmt.Errorf("the %s strategy needs %s in the topic template, got %q", strategyTopic, exchangePlaceholder, cfg.topic)
		}
	default:
		return nil, fmt.Errorf("unknown strategy %q", cfg.strategy)
	}
	if cfg.topic == "" {
		return nil, fmt.Errorf("topic is empty")
	}
	r := &router{cfg: cfg, table: map[string]*exchangeRoute{}}
	for _, name := range cfg.exchanges {
		name = normalize(name)
		if name == "" {
			return nil, fmt.Errorf("exchanges: an exchange id is empty")
		}
		r.table[name] = r.newRoute(name)
	}
	for hot, n := range cfg.hot {
		if _, ok := r.table[normalize(hot)]; !ok {
			return nil, fmt.Errorf("hot_exchanges: %q is not one of the exchanges", hot)
		}
		if n < 1 || n > cfg.partitions {
			return nil, fmt.Errorf("hot_exchanges: %s: partitions must be in [1, %d], got %d", hot, cfg.partitions, n)
		}
	}
	canonical := maps.Clone(r.table)
	for alias, target := range cfg.aliases {
		route, ok := canonical[normalize(target)]
		if !ok {
			return nil, fmt.Errorf("aliases: %q maps to %q, which is not one of the exchanges", alias, target)
		}
		if other, isExchange := canonical[normalize(alias)]; isExchange && other != route {
			return nil, fmt.Errorf("aliases: %q is itself an exchange", alias)
		}
		r.table[normalize(alias)] = route
	}
	switch cfg.unknown {
	case policyReject:
	case policyDefault:
		name := normalize(cfg.defaultExchange)
		if name == "" {
			return nil, fmt.Errorf("the %s policy needs a default_exchange", policyDefault)
		}
		if route, ok := r.table[name]; ok {
			r.fallback = route
		} else {
			r.fallback = r.newRoute(name)
		}
	default:
		return nil, fmt.Errorf("unknown unknown_exchange policy %q", cfg.unknown)
	}
	r.partitionMeta = make([]any, cfg.partitions)
	for p := range r.partitionMeta {
		r.partitionMeta[p] = strconv.Itoa(p)
	}
	if cfg.deadLetterTopic == "" {
		cfg.deadLetterTopic = defaultDeadLetterTopic(cfg.topic)
		r.cfg.deadLetterTopic = cfg.deadLetterTopic
	}
	r.deadLetterMeta = cfg.deadLetterTopic
	return r, nil
}

// defaultDeadLetterTopic is <topic>.dlq, with a template's exchange
// placeholder and the separator before it left out:
// crypto-prices.{exchange} → crypto-prices.dlq.
func defaultDeadLetterTopic(topic string) string {
	base := strings.ReplaceAll(topic, exchangePlaceholder, "")
	base = strings.Trim(base, ".-_")
	return base + ".dlq"
}

func (r *router) newRoute(name string) *exchangeRoute {
	share := r.cfg.share
	for hot, n := range r.cfg.hot {
		if normalize(hot) == name {
			share = n
		}
	}
	topic := r.cfg.topic
	if r.cfg.strategy == strategyTopic {
		topic = strings.ReplaceAll(topic, exchangePlaceholder, name)
	}
	return &exchangeRoute{
		name:      name,
		ranked:    rankedPartitions(name, r.cfg.partitions, share),
		topic:     topic,
		nameMeta:  name,
		topicMeta: topic,
	}
}

// normalize trims and lower-cases an exchange id, as ingest does.
func normalize(id string) string {
	return strings.ToLower(strings.TrimSpace(id))
}

// resolve finds the route of a raw exchange id. known is false when an
// unknown exchange falls back to the default.
func (r *router) resolve(raw []byte) (route *exchangeRoute, known bool, err error) {
	if route, ok := r.table[string(raw)]; ok {
		return route, true, nil
	}
	name := normalize(string(raw))
	if name == "" {
		return nil, false, result.New(result.Business, CodeMissingExchange, "the exchange id is empty")
	}
	if route, ok := r.table[name]; ok {
		return route, true, nil
	}
	if r.fallback != nil {
		return r.fallback, false, nil
	}
	return nil, false, result.New(result.Business, CodeUnknownExchange,
		fmt.Sprintf("exchange %q is not known and the unknown_exchange policy is %s", abbreviate(name), policyReject))
}

// route decides where the message data goes, reading the exchange id from
// the configured field.
func (r *router) route(data []byte) (decision, error) {
	start, end, found, err := field(data, r.cfg.exchangeField)
	if err != nil {
		return decision{}, result.Wrap(result.Business, CodeInvalidJSON, err, "read the exchange id")
	}
	path := strings.Join(r.cfg.exchangeField, ".")
	if !found || string(data[start:end]) == "null" {
		return decision{}, result.New(result.Business, CodeMissingExchange, path+" is missing")
	}
	raw, ok := stringValue(data[start:end])
	if !ok {
		return decision{}, result.New(result.Business, CodeInvalidExchange,
			fmt.Sprintf("%s is %s, not a string", path, abbreviate(string(data[start:end]))))
	}
	d, known, err := r.routeExchange(data, raw)
	if err != nil {
		return d, err
	}
	if known && r.cfg.normalize && string(data[start+1:end-1]) != d.route.name {
		d.normalized = make([]byte, 0, len(data)+len(d.route.name)-len(raw))
		d.normalized = append(d.normalized, data[:start]...)
		d.normalized = append(d.normalized, '"')
		d.normalized = append(d.normalized, d.route.name...)
		d.normalized = append(d.normalized, '"')
		d.normalized = append(d.normalized, data[end:]...)
	}
	return d, nil
}

// routeExchange decides where data goes, given its raw exchange id; known
// is false when an unknown exchange was routed as the default.
func (r *router) routeExchange(data, exchange []byte) (decision, bool, error) {
	route, known, err := r.resolve(exchange)
	if err != nil {
		return decision{}, false, err
	}
	symbol := r.symbol(data)
	d := decision{route: route, partition: pick(route.ranked, symbol), key: route.name}
	if len(symbol) > 0 {
		d.key = route.name + ":" + string(symbol)
	}
	return d, known, nil
}

// symbol returns the first non-empty string among the symbol fields, or
// nil: then the exchange alone is the key, as for analytics.
func (r *router) symbol(data []byte) []byte {
	for _, path := range r.cfg.symbolFields {
		start, end, found, err := field(data, path)
		if err != nil || !found {
			continue
		}
		if s, ok := stringValue(data[start:end]); ok && len(s) > 0 {
			return s
		}
	}
	return nil
}

func abbreviate(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}
