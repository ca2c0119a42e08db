package supervisor

import (
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reload outcomes, the values of qiflow_reloads_total's result label.
const (
	// Applied: the new config runs.
	Applied = "applied"
	// Rejected: the new config did not lint, build or start, and the
	// running stream, if any, was never touched.
	Rejected = "rejected"
	// RolledBack: the new config was built but failed to start after the
	// old stream was drained, so the old config runs again.
	RolledBack = "rolled_back"
	// Removed: the config file left a watched directory; its stream was
	// drained and stopped.
	Removed = "removed"
	// Unchanged: a requested reload found the config as it runs.
	Unchanged = "unchanged"
)

// Record reports one reload of one stream.
type Record struct {
	Seq     int       `json:"seq"`
	At      time.Time `json:"at"`
	Trigger string    `json:"trigger"`
	Stream  string    `json:"stream"`
	File    string    `json:"file"`
	Result  string    `json:"result"`
	Reason  string    `json:"reason,omitempty"`
	// Generation numbers the stream instance running afterwards; it
	// changes whenever a stream is (re)started.
	Generation int `json:"generation"`
	// DrainSeconds is how long the old stream took to drain.
	DrainSeconds float64 `json:"drain_seconds"`
	// GapSeconds is how long no stream ran: from the start of the drain
	// until the new (or restored) stream was ready. Zero when the old
	// stream was never touched.
	GapSeconds float64 `json:"gap_seconds"`
}

// historySize bounds the records kept for GET /reloads.
const historySize = 256

// history keeps the last records and counts every outcome.
type history struct {
	mu      sync.Mutex
	seq     int
	records []Record
	counter *prometheus.CounterVec
}

func newHistory(reg prometheus.Registerer) (*history, error) {
	h := &history{counter: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "qiflow_reloads_total",
		Help: "Config reloads by outcome: applied, rejected, rolled_back, removed or unchanged.",
	}, []string{"result"})}
	for _, r := range []string{Applied, Rejected, RolledBack, Removed, Unchanged} {
		h.counter.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(h.counter); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// add numbers, stores, counts and logs rec, and returns it.
func (h *history) add(log *slog.Logger, rec Record) Record {
	h.mu.Lock()
	h.seq++
	rec.Seq = h.seq
	rec.At = time.Now().UTC()
	h.records = append(h.records, rec)
	if len(h.records) > historySize {
		h.records = h.records[len(h.records)-historySize:]
	}
	h.mu.Unlock()
	h.counter.WithLabelValues(rec.Result).Inc()

	attrs := []any{"stream", rec.Stream, "file", rec.File, "trigger", rec.Trigger, "result", rec.Result, "generation", rec.Generation}
	if rec.DrainSeconds > 0 {
		attrs = append(attrs, "drain_seconds", rec.DrainSeconds, "gap_seconds", rec.GapSeconds)
	}
	switch rec.Result {
	case Applied, Unchanged, Removed:
		log.Info("Reload "+rec.Result, attrs...)
	default:
		log.Warn("Reload "+rec.Result, append(attrs, "reason", rec.Reason)...)
	}
	return rec
}

// list returns a copy of the stored records, oldest first.
func (h *history) list() []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Record(nil), h.records...)
}
