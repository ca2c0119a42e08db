package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/qicore/qiflow/internal/supervisor"
)

// qiflowAPI reads the HTTP API of a running `qiflow run --watch` (or
// `streams --watch`): GET /ready, /reloads and /metrics, POST /reload.
type qiflowAPI struct {
	base   string
	client *http.Client
}

// apiTimeout bounds one request to qiflow; POST /reload waits for the
// reload, which drains and starts streams, so it gets longer.
const (
	apiTimeout    = 10 * time.Second
	reloadTimeout = 2 * time.Minute
)

func newQiflowAPI(base string) *qiflowAPI {
	return &qiflowAPI{base: strings.TrimRight(base, "/"), client: &http.Client{}}
}

// streamState is one stream as GET /ready and GET /reloads report it.
type streamState struct {
	Stream     string     `json:"stream"`
	File       string     `json:"file,omitempty"`
	Running    bool       `json:"running"`
	Generation int        `json:"generation,omitempty"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	Ready      bool       `json:"ready"`
	Stale      bool       `json:"stale,omitempty"`
	Problem    string     `json:"problem,omitempty"`
	Status     string     `json:"status,omitempty"`
}

// reloadsReply is the body of GET /reloads.
type reloadsReply struct {
	Reloads []supervisor.Record `json:"reloads"`
	Streams []streamState       `json:"streams"`
}

// reloads returns the reload history, oldest first, and the streams.
func (a *qiflowAPI) reloads(ctx context.Context) (reloadsReply, error) {
	var r reloadsReply
	err := a.getJSON(ctx, "/reloads", &r, http.StatusOK)
	return r, err
}

// reload asks qiflow to reload now, as POST /reload does, and returns the
// records of what changed.
func (a *qiflowAPI) reload(ctx context.Context) ([]supervisor.Record, error) {
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+"/reload", nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		Reloads []supervisor.Record `json:"reloads"`
		Error   string              `json:"error"`
	}
	if err := a.do(req, &body, http.StatusOK, http.StatusUnprocessableEntity, http.StatusServiceUnavailable); err != nil {
		return nil, err
	}
	if body.Error != "" {
		return nil, fmt.Errorf("qiflow refused the reload: %s", body.Error)
	}
	return body.Reloads, nil
}

// metrics scrapes GET /metrics.
func (a *qiflowAPI) metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return nil, a.unreachable(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", a.base, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s/metrics: %w", a.base, err)
	}
	return families, nil
}

func (a *qiflowAPI) getJSON(ctx context.Context, path string, v any, accept ...int) error {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	return a.do(req, v, accept...)
}

func (a *qiflowAPI) do(req *http.Request, v any, accept ...int) error {
	resp, err := a.client.Do(req)
	if err != nil {
		return a.unreachable(err)
	}
	defer resp.Body.Close()
	ok := false
	for _, code := range accept {
		ok = ok || resp.StatusCode == code
	}
	if !ok {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s %s: %w", req.Method, req.URL, err)
	}
	return nil
}

// unreachable explains a failed request the way an operator needs it.
func (a *qiflowAPI) unreachable(err error) error {
	return fmt.Errorf("qiflow's HTTP API at %s does not answer (is `qiflow run --watch` running, and is --qiflow-url right?): %w", a.base, err)
}
