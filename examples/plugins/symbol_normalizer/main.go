// Command symbol_normalizer is an example qiflow plugin. It normalises the
// field "symbol" of JSON messages: it trims spaces, replaces exchange
// spellings from a configured mapping (xbt → BTC) and upper-cases the rest.
// A message that is not a JSON object, or whose symbol is not a string,
// fails alone and goes to the dead-letter topic.
//
// Build it with `make plugins`, which installs it as
// plugins.d/qiflow-plugin-symbol_normalizer, and use it with:
//
//	pipeline:
//	  processors:
//	    - external:
//	        plugin: symbol_normalizer
//	        config:
//	          mapping: { xbt: BTC, xdg: DOGE }
//
// pipelines/examples/prices_normalized.yaml is a whole pipeline with it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/qicore/qiflow/pkg/pluginsdk"
)

// config is the external processor's config field.
type config struct {
	// Mapping maps exchange spellings of a symbol to the canonical one. Keys
	// match whatever their case; values are used as given.
	Mapping map[string]string `json:"mapping"`
}

// normalizer implements pluginsdk.Processor and pluginsdk.Configurer.
type normalizer struct {
	// mapping has lower-cased keys. Configure sets it before any batch, and
	// ProcessBatch, which may run concurrently, only reads it.
	mapping map[string]string
}

// Configure reads the mapping; it runs on every start of the plugin.
func (n *normalizer) Configure(_ context.Context, c pluginsdk.Config) error {
	var conf config
	if err := c.Decode(&conf); err != nil {
		return err
	}
	n.mapping = make(map[string]string, len(conf.Mapping))
	for from, to := range conf.Mapping {
		if strings.TrimSpace(to) == "" {
			return fmt.Errorf("mapping: %q maps to an empty symbol", from)
		}
		n.mapping[strings.ToLower(strings.TrimSpace(from))] = to
	}
	slog.Info("symbol_normalizer configured", "mappings", len(n.mapping))
	return nil
}

// ProcessBatch normalises each message's symbol.
func (n *normalizer) ProcessBatch(_ context.Context, batch []*pluginsdk.Message) error {
	for _, m := range batch {
		payload, err := n.normalize(m.Payload)
		if err != nil {
			m.Fail(err)
			continue
		}
		m.Payload = payload
	}
	return nil
}

// normalize rewrites the symbol of one JSON object. The object is decoded
// into raw values, so every other field, numbers included, keeps its exact
// text: a price of "67234.12345678" is never rounded through a float64.
// Re-encoding sorts the keys, which JSON objects do not care about.
func (n *normalizer) normalize(payload []byte) ([]byte, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil || obj == nil {
		return nil, pluginsdk.WithCode(errors.New("the message is not a JSON object"), "invalid_json")
	}
	raw, ok := obj["symbol"]
	if !ok {
		return payload, nil
	}
	var symbol string
	if err := json.Unmarshal(raw, &symbol); err != nil {
		return nil, pluginsdk.WithCode(fmt.Errorf("symbol is %s, not a string", raw), "invalid_symbol")
	}
	normalized := n.symbol(symbol)
	if normalized == symbol {
		return payload, nil
	}
	obj["symbol"], _ = json.Marshal(normalized)
	return json.Marshal(obj)
}

// symbol is the canonical form of one symbol.
func (n *normalizer) symbol(s string) string {
	s = strings.TrimSpace(s)
	if to, ok := n.mapping[strings.ToLower(s)]; ok {
		return to
	}
	return strings.ToUpper(s)
}

func main() { pluginsdk.Serve(&normalizer{}) }
