package devcmd

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
)

// summaryCoins are the coins whose last price per exchange is shown.
var summaryCoins = []struct{ id, label string }{{"bitcoin", "BTC"}, {"ethereum", "ETH"}}

// summaryTimeout bounds the queries of one summary.
const summaryTimeout = 4 * time.Second

// lastPricesSQL returns the last price of each summary coin on each
// exchange. It looks only at the last hour of market time, so that it
// reads a few index pages however many rows the table holds.
const lastPricesSQL = `
SELECT DISTINCT ON (exchange_id, coin_id) exchange_id, coin_id, usd_price::text, last_updated
FROM crypto_prices
WHERE coin_id = ANY($1)
  AND last_updated > (SELECT max(last_updated) FROM crypto_prices) - interval '1 hour'
ORDER BY exchange_id, coin_id, last_updated DESC`

// summary shows what this run has done: the feed's messages, and per
// ingest pipeline its rows, conflicts skipped, dead letters, consumer lag
// and end-to-end latency. It counts only this run: produced messages from
// the end offsets it saw at the start, and the rest from the process's own
// metrics. It is used by one goroutine.
type summary struct {
	adm      *kadm.Client
	conn     *pgx.Conn
	out      io.Writer
	screen   *screen // nil: print plain blocks
	badShare float64
	ingest   []ingestPipeline
	start    time.Time
	base     map[string]int64 // end offsets of the data topics at the start
	// baseCounts are the counters at the start: a process may run more
	// than one dev run, and each counts only its own.
	baseCounts map[string]pipelineCounts
	last       snapshot
}

func newSummary(ctx context.Context, adm *kadm.Client, dsn string, o options) (*summary, error) {
	base, err := endOffsets(ctx, adm, o.ingest)
	if err != nil {
		return nil, fmt.Errorf("summary baseline: %w", err)
	}
	counts, err := gatherCounts()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect for the summary: %w", err)
	}
	now := time.Now()
	return &summary{adm: adm, conn: conn, out: o.out, screen: o.logs, badShare: o.badShare, ingest: o.ingest, start: now, base: base,
		baseCounts: counts, last: snapshot{at: now, pipelines: counts}}, nil
}

func (s *summary) close() { _ = s.conn.Close(context.Background()) }

// show refreshes the summary: in place on a terminal, as a new block
// otherwise.
func (s *summary) show(ctx context.Context) {
	block := s.block(ctx)
	if s.screen != nil {
		s.screen.draw(block)
		return
	}
	_, _ = io.WriteString(s.out, block)
}

// final prints the last summary after the pipelines stopped, below
// anything drawn before, with what each group left uncommitted.
func (s *summary) final(ctx context.Context, drained time.Duration) {
	if s.screen != nil {
		s.screen.release()
	}
	_, _ = io.WriteString(s.out, s.block(ctx))
	s.printLag(ctx)
	fmt.Fprintf(s.out, "stopped:  drained in %s\n", drained.Round(10*time.Millisecond))
}

// block renders one summary from a fresh snapshot. A part that cannot be
// read shows its error instead: the demo keeps running through a broker
// or database hiccup.
func (s *summary) block(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, summaryTimeout)
	defer cancel()
	now := snapshot{at: time.Now(), pipelines: s.last.pipelines}
	var b strings.Builder
	fmt.Fprintf(&b, "── qiflow dev %s ──", now.at.Sub(s.start).Round(time.Second))
	if ends, err := endOffsets(ctx, s.adm, s.ingest); err != nil {
		fmt.Fprintf(&b, " feed: %v\n", err)
		now.produced = s.last.produced
	} else {
		for _, p := range s.ingest {
			now.produced += ends[p.topic] - s.base[p.topic]
		}
		fmt.Fprintf(&b, " feed %.0f msg/s, %d produced", rate(float64(now.produced-s.last.produced), now.at.Sub(s.last.at)), now.produced)
		if s.badShare > 0 {
			fmt.Fprintf(&b, ", %g%% bad on purpose", 100*s.badShare)
		}
		b.WriteString("\n")
	}
	if counts, err := gatherCounts(); err != nil {
		fmt.Fprintf(&b, "  pipelines     %v\n", err)
	} else {
		now.pipelines = counts
	}
	lags, lagErr := s.adm.Lag(ctx, groups(s.ingest)...)

	fmt.Fprintf(&b, "  %-10s %8s %10s %9s %12s %7s %8s %8s\n", "pipeline", "rows/s", "rows", "conflicts", "dead letters", "lag", "p50 ms", "p99 ms")
	for _, p := range s.ingest {
		c, prev, base := now.pipelines[p.name], s.last.pipelines[p.name], s.baseCounts[p.name]
		lag := "?"
		if l, ok := lags[p.group]; lagErr == nil && ok && l.Error() == nil {
			lag = fmt.Sprint(l.Lag.Total())
		}
		fmt.Fprintf(&b, "  %-10s %8.0f %10.0f %9.0f %12.0f %7s %8s %8s\n", p.name,
			rate(c.rows-prev.rows, now.at.Sub(s.last.at)), c.rows-base.rows, c.conflicts-base.conflicts, c.deadLetters-base.deadLetters, lag,
			millis(0.50, c.latency, prev.latency), millis(0.99, c.latency, prev.latency))
	}
	if lagErr != nil {
		fmt.Fprintf(&b, "  lag           %v\n", lagErr)
	}
	dlqs := make([]string, len(s.ingest))
	for i, p := range s.ingest {
		dlqs[i] = p.topic + ".dlq"
	}
	fmt.Fprintf(&b, "  dead letters go to %s; latency: Kafka timestamp to row, since the last refresh\n",
		strings.Join(dlqs, ", "))
	s.last = now

	if err := s.lastPrices(ctx, &b); err != nil {
		fmt.Fprintf(&b, "  last prices   %v\n", err)
	}
	return b.String()
}

// millis formats the q-quantile of the latency samples since prev.
func millis(q float64, now, prev latency) string {
	sec, ok := quantile(q, now, prev)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f", 1000*sec)
}

// caughtUp reports whether every ingest group has committed all its topic
// holds.
func (s *summary) caughtUp(ctx context.Context) bool {
	lags, err := s.adm.Lag(ctx, groups(s.ingest)...)
	if err != nil {
		return false
	}
	for _, g := range groups(s.ingest) {
		if l, ok := lags[g]; !ok || l.Error() != nil || l.Lag.Total() > 0 {
			return false
		}
	}
	return true
}

// printLag writes how many messages each ingest group has not committed:
// after a graceful stop they are what the next run reads first.
func (s *summary) printLag(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, summaryTimeout)
	defer cancel()
	lags, err := s.adm.Lag(ctx, groups(s.ingest)...)
	if err != nil {
		fmt.Fprintf(s.out, "  uncommitted   %v\n", err)
		return
	}
	var b strings.Builder
	b.WriteString("  uncommitted  ")
	for _, g := range groups(s.ingest) {
		l, ok := lags[g]
		if !ok || l.Error() != nil {
			fmt.Fprintf(&b, " %s ?", g)
			continue
		}
		fmt.Fprintf(&b, " %s %d", g, l.Lag.Total())
	}
	b.WriteString("\n")
	_, _ = io.WriteString(s.out, b.String())
}

// lastPrices writes the last price of each summary coin per exchange.
func (s *summary) lastPrices(ctx context.Context, b *strings.Builder) error {
	ids := make([]string, len(summaryCoins))
	labels := map[string]string{}
	for i, c := range summaryCoins {
		ids[i], labels[c.id] = c.id, c.label
	}
	rows, err := s.conn.Query(ctx, lastPricesSQL, ids)
	if err != nil {
		return fmt.Errorf("query last prices: %w", err)
	}
	type quote struct{ coin, price string }
	var exchanges []string
	quotes := map[string][]quote{}
	var newest time.Time
	for rows.Next() {
		var exchange, coin, price string
		var at time.Time
		if err := rows.Scan(&exchange, &coin, &price, &at); err != nil {
			return fmt.Errorf("read last prices: %w", err)
		}
		if _, ok := quotes[exchange]; !ok {
			exchanges = append(exchanges, exchange)
		}
		quotes[exchange] = append(quotes[exchange], quote{labels[coin], price})
		if at.After(newest) {
			newest = at
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read last prices: %w", err)
	}
	if len(exchanges) == 0 {
		b.WriteString("  last prices   none yet\n")
		return nil
	}
	fmt.Fprintf(b, "  last prices   market time %s\n", newest.UTC().Format(time.RFC3339))
	for _, e := range exchanges {
		fmt.Fprintf(b, "    %-10s", e)
		for _, q := range quotes[e] {
			fmt.Fprintf(b, "  %s %18s", q.coin, q.price)
		}
		b.WriteString("\n")
	}
	return nil
}
