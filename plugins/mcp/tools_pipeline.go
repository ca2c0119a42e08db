package mcp

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qicore/qiflow/internal/supervisor"
)

// Bounds of streams_status's sampling window.
const (
	defaultWindowSeconds = 2
	maxWindowSeconds     = 30
)

type streamsStatusIn struct {
	WindowSeconds float64 `json:"window_seconds,omitempty" jsonschema:"seconds between the two /metrics samples the rates come from; default 2, at most 30"`
}

type streamsStatusOut struct {
	QiflowURL     string         `json:"qiflow_url" jsonschema:"the qiflow HTTP API answered from"`
	WindowSeconds float64        `json:"window_seconds" jsonschema:"the sampling window of the rates"`
	Streams       []streamReport `json:"streams"`
}

type streamReport struct {
	Stream string `json:"stream" jsonschema:"the stream id: the config file's name without extension"`
	File   string `json:"file,omitempty" jsonschema:"the config file"`
	State  string `json:"state" jsonschema:"ready (running, every input and output connected), connecting (running, not all connected), or stopped (not running: rejected at start or stopped on a fatal error)"`
	// Stale: the file holds a config other than the running one.
	Stale          bool               `json:"stale,omitempty" jsonschema:"the file holds a config other than the running one (it was rejected or rolled back); last_error says why"`
	Generation     int                `json:"generation,omitempty" jsonschema:"numbers the running instance; changes at every (re)start"`
	StartedAt      *time.Time         `json:"started_at,omitempty"`
	LastError      string             `json:"last_error,omitempty" jsonschema:"why the config does not run, or what is not connected"`
	LastReload     *supervisor.Record `json:"last_reload,omitempty" jsonschema:"the stream's latest reload record"`
	Counters       map[string]float64 `json:"counters" jsonschema:"totals since start, by their names on /metrics: input_received_total, output_sent_total, output_error_total, qiflow_timescale_rows_written_total, qiflow_timescale_rows_dead_lettered_total, ..."`
	RatesPerSecond map[string]float64 `json:"rates_per_second" jsonschema:"the same counters' increase per second over the window"`
}

// Stream states of streams_status.
const (
	stateReady      = "ready"
	stateConnecting = "connecting"
	stateStopped    = "stopped"
)

type reloadsIn struct {
	Limit  int    `json:"limit,omitempty" jsonschema:"how many records, newest first; default 20, at most 256"`
	Stream string `json:"stream,omitempty" jsonschema:"only this stream's reloads"`
	Result string `json:"result,omitempty" jsonschema:"only this outcome: applied, rejected, rolled_back, removed or unchanged"`
}

type reloadsOut struct {
	Reloads []supervisor.Record `json:"reloads" jsonschema:"newest first"`
	Total   int                 `json:"total" jsonschema:"records matching the filters in qiflow's history (the last 256 reloads)"`
}

// Bounds of reloads' limit.
const (
	defaultReloads = 20
	maxReloads     = 256
)

type reloadIn struct{}

type reloadOut struct {
	Reloads []supervisor.Record `json:"reloads" jsonschema:"what this reload did, one record per stream that changed; none when every config is as it runs"`
}

func (tb *toolbox) registerPipelineTools(srv *mcp.Server) {
	addTool(tb, srv, &mcp.Tool{
		Name:        "streams_status",
		Title:       "Streams: state, rates, last error and last reload",
		Description: "Per stream of the running qiflow: its state (ready, connecting, stopped), whether its file holds a rejected config, its last error, its last reload, and its counters with their rates per second, sampled from /metrics over window_seconds. Use it to see whether ingest keeps up (input_received_total vs qiflow_timescale_rows_written_total rates) and what failed.",
		Annotations: readOnly,
	}, tb.streamsStatus)
	addTool(tb, srv, &mcp.Tool{
		Name:        "reloads",
		Title:       "Reload history",
		Description: "The history of config reloads of the running qiflow, newest first: when, what triggered it (start, watch, http), the stream and file, the outcome (applied, rejected, rolled_back, removed, unchanged), the reason of a rejection or rollback, how long the drain and the gap took. Use it to see whether the last reload applied.",
		Annotations: readOnly,
	}, tb.reloads)
	addWriteTool(tb, srv, &mcp.Tool{
		Name:        "reload",
		Title:       "Reload the pipelines now",
		Description: "Re-read every config and apply the changes, as POST /reload does: a new config is linted and built first, the running stream drained, and the old config restored if the new one fails to start. Changes the running pipeline; needs --allow-writes.",
	}, func(ctx context.Context, _ reloadIn) (reloadOut, error) {
		recs, err := tb.api.reload(ctx)
		if recs == nil {
			recs = []supervisor.Record{}
		}
		return reloadOut{Reloads: recs}, err
	})
}

func (tb *toolbox) streamsStatus(ctx context.Context, in streamsStatusIn) (streamsStatusOut, error) {
	window := in.WindowSeconds
	switch {
	case window < 0 || window > maxWindowSeconds:
		return streamsStatusOut{}, fmt.Errorf("window_seconds %g: want 0 to %d", window, maxWindowSeconds)
	case window == 0:
		window = defaultWindowSeconds
	}
	first, err := tb.api.metrics(ctx)
	if err != nil {
		return streamsStatusOut{}, err
	}
	began := time.Now()
	select {
	case <-ctx.Done():
		return streamsStatusOut{}, ctx.Err()
	case <-time.After(time.Duration(window * float64(time.Second))):
	}
	rel, err := tb.api.reloads(ctx)
	if err != nil {
		return streamsStatusOut{}, err
	}
	second, err := tb.api.metrics(ctx)
	if err != nil {
		return streamsStatusOut{}, err
	}
	elapsed := time.Since(began).Seconds()
	before, after := countersByStream(first), countersByStream(second)

	out := streamsStatusOut{QiflowURL: tb.api.base, WindowSeconds: window, Streams: []streamReport{}}
	for _, st := range rel.Streams {
		key := st.Stream
		if _, labelled := after[key]; !labelled && len(rel.Streams) == 1 {
			key = "" // run mode: the metrics carry no stream label
		}
		r := streamReport{
			Stream: st.Stream, File: st.File, Stale: st.Stale, Generation: st.Generation, StartedAt: st.StartedAt,
			Counters: map[string]float64{}, RatesPerSecond: map[string]float64{},
		}
		switch {
		case !st.Running:
			r.State = stateStopped
		case st.Ready:
			r.State = stateReady
		default:
			r.State = stateConnecting
		}
		r.LastError = st.Problem
		if r.LastError == "" {
			r.LastError = st.Status
		}
		for i := len(rel.Reloads) - 1; i >= 0; i-- {
			if rel.Reloads[i].Stream == st.Stream {
				rec := rel.Reloads[i]
				r.LastReload = &rec
				break
			}
		}
		for name, v := range after[key] {
			r.Counters[name] = v
			if elapsed > 0 {
				r.RatesPerSecond[name] = (v - before[key][name]) / elapsed
			}
		}
		out.Streams = append(out.Streams, r)
	}
	return out, nil
}

func (tb *toolbox) reloads(ctx context.Context, in reloadsIn) (reloadsOut, error) {
	limit, err := bounded("limit", in.Limit, defaultReloads, maxReloads)
	if err != nil {
		return reloadsOut{}, err
	}
	rel, err := tb.api.reloads(ctx)
	if err != nil {
		return reloadsOut{}, err
	}
	out := reloadsOut{Reloads: []supervisor.Record{}}
	for _, rec := range slices.Backward(rel.Reloads) {
		if (in.Stream != "" && rec.Stream != in.Stream) || (in.Result != "" && rec.Result != in.Result) {
			continue
		}
		out.Total++
		if len(out.Reloads) < limit {
			out.Reloads = append(out.Reloads, rec)
		}
	}
	return out, nil
}

// bounded returns v, or def when v is 0, and refuses a v outside 1..max
// with an error that names the field and the bound.
func bounded(field string, v, def, max int) (int, error) {
	switch {
	case v == 0:
		return def, nil
	case v < 0:
		return 0, fmt.Errorf("%s %d: must be positive", field, v)
	case v > max:
		return 0, fmt.Errorf("%s %d is above the cap of %d: ask for fewer (narrow the filters or the time range)", field, v, max)
	}
	return v, nil
}
