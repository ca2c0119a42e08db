package devcmd

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/sr/srfake"
	"gopkg.in/yaml.v3"
)

// The names --format avro gives the Avro prices (pipelines/topics.yaml,
// examples/prices_avro.yaml).
const (
	avroPriceTopic   = "crypto-prices-avro"
	avroPriceSubject = avroPriceTopic + "-value"
	avroPriceSchema  = "schemas/price.avsc"
)

// devRegistry is franz-go's in-memory schema registry, served on 127.0.0.1
// for one dev run: a real registry API, empty at the start; the feed's
// encoder registers the schema.
type devRegistry struct {
	url string
	srv *http.Server
}

func startRegistry() (*devRegistry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the in-process schema registry: %w", err)
	}
	r := &devRegistry{url: "http://" + ln.Addr().String(),
		srv: &http.Server{Handler: srfake.NewRegistry().Handler(), ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

func (r *devRegistry) close() error {
	if err := r.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("stop the schema registry: %w", err)
	}
	return nil
}

// avroFeed returns feed.yaml of dir with its prices encoded as Avro: the
// price case of its switch routes to avroPriceTopic and, after the router,
// encodes with schemas/price.avsc registered under avroPriceSubject at
// registryURL. The rest of the feed is unchanged.
func avroFeed(dir, registryURL string) (string, error) {
	text, err := os.ReadFile(filepath.Join(dir, feedFile))
	if err != nil {
		return "", fmt.Errorf("read pipeline: %w", err)
	}
	var feed map[string]any
	if err := yaml.Unmarshal(text, &feed); err != nil {
		return "", fmt.Errorf("%s: %w", feedFile, err)
	}
	priceCase, err := priceSwitchCase(feed)
	if err != nil {
		return "", fmt.Errorf("%s: %w", feedFile, err)
	}
	procs, _ := priceCase["processors"].([]any)
	for _, p := range procs {
		if router, ok := p.(map[string]any)["exchange_router"].(map[string]any); ok {
			router["topic"] = avroPriceTopic
		}
	}
	priceCase["processors"] = append(procs, map[string]any{"schema_registry_encode": map[string]any{
		"format": "price", "schema_file": filepath.Join(dir, avroPriceSchema), "subject": avroPriceSubject, "url": registryURL,
	}})
	out, err := yaml.Marshal(feed)
	if err != nil {
		return "", fmt.Errorf("%s: %w", feedFile, err)
	}
	return string(out), nil
}

// priceSwitchCase finds the case of the feed's switch processor that
// routes prices to crypto-prices.
func priceSwitchCase(feed map[string]any) (map[string]any, error) {
	pipeline, _ := feed["pipeline"].(map[string]any)
	procs, _ := pipeline["processors"].([]any)
	for _, p := range procs {
		cases, _ := p.(map[string]any)["switch"].([]any)
		for _, c := range cases {
			c, _ := c.(map[string]any)
			inner, _ := c["processors"].([]any)
			for _, ip := range inner {
				if router, ok := ip.(map[string]any)["exchange_router"].(map[string]any); ok && router["topic"] == "crypto-prices" {
					return c, nil
				}
			}
		}
	}
	return nil, errors.New("no switch case routes prices to crypto-prices, so --format avro cannot encode them")
}
