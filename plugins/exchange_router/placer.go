package exchangerouter

import (
	"fmt"
)

// Placer places wire-format messages exactly as an exchange_router
// processor with the same fields does, for programs that produce without a
// pipeline (`qiflow replay`). It is safe for concurrent use.
type Placer struct{ router *router }

// NewPlacer parses the fields of an exchange_router processor, given as
// YAML (`topic: crypto-prices`, `partitions: 12`, ...). A Bloblang
// exchange_mapping cannot be used outside a pipeline and is refused.
func NewPlacer(yaml string) (*Placer, error) {
	conf, err := processorSpec().ParseYAML(yaml, nil)
	if err != nil {
		return nil, fmt.Errorf("exchange_router config: %w", err)
	}
	if conf.Contains(erFieldExchangeMapping) {
		return nil, fmt.Errorf("exchange_router config: %s is not supported here; name the exchange field", erFieldExchangeMapping)
	}
	cfg, err := parseRouterConfig(conf)
	if err != nil {
		return nil, fmt.Errorf("exchange_router config: %w", err)
	}
	r, err := newRouter(cfg)
	if err != nil {
		return nil, fmt.Errorf("exchange_router config: %w", err)
	}
	return &Placer{router: r}, nil
}

// Place returns the topic, key and partition of msg, and the message to
// send: msg itself, or a copy with the exchange id rewritten to its
// canonical form when the router would rewrite it. A message the router
// rejects returns its BUSINESS error.
func (p *Placer) Place(msg []byte) (topic, key string, partition int32, out []byte, err error) {
	d, err := p.router.route(msg)
	if err != nil {
		return "", "", 0, nil, err
	}
	out = msg
	if d.normalized != nil {
		out = d.normalized
	}
	return d.route.topic, d.key, d.partition, out, nil
}
