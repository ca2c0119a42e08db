package pluginsdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/qicore/qiflow/pkg/pluginsdk"
)

// enricher is a plugin that adds a field to JSON messages. It implements
// Processor, and the optional Configurer and HealthChecker.
type enricher struct {
	source string
	client *http.Client
}

// Configure receives the external processor's config field.
func (e *enricher) Configure(_ context.Context, c pluginsdk.Config) error {
	var conf struct {
		Source string `json:"source"`
	}
	if err := c.Decode(&conf); err != nil {
		return err
	}
	if conf.Source == "" {
		return errors.New("source is required")
	}
	e.source, e.client = conf.Source, &http.Client{Timeout: 2 * time.Second}
	slog.Info("enricher configured", "source", e.source)
	return nil
}

// ProcessBatch changes messages in place, and fails the ones it cannot
// handle one by one.
func (e *enricher) ProcessBatch(_ context.Context, batch []*pluginsdk.Message) error {
	for _, m := range batch {
		if !bytes.HasPrefix(m.Payload, []byte("{")) {
			m.Fail(pluginsdk.WithCode(errors.New("not a JSON object"), "invalid_json"))
			continue
		}
		if m.Metadata["kind"] == "heartbeat" {
			m.Drop()
			continue
		}
		m.Payload = append([]byte(fmt.Sprintf(`{"source":%q,`, e.source)), m.Payload[1:]...)
		m.Metadata["enriched"] = "true"
	}
	return nil
}

// CheckHealth tells qiflow whether the plugin can work.
func (e *enricher) CheckHealth(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, e.source, nil)
	if err != nil {
		return err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// A plugin's main calls Serve, which runs until qiflow stops the plugin.
func Example() {
	pluginsdk.Serve(&enricher{})
}

// Decode fills a struct from the config and refuses keys it does not know.
func ExampleConfig_Decode() {
	var conf struct {
		Mapping map[string]string `json:"mapping"`
	}
	err := pluginsdk.Config(`{"mapping":{"xbt":"BTC"}}`).Decode(&conf)
	fmt.Println(conf.Mapping, err)

	err = pluginsdk.Config(`{"mappings":{}}`).Decode(&conf)
	fmt.Println(err)
	// Output:
	// map[xbt:BTC] <nil>
	// decode plugin config: json: unknown field "mappings"
}
