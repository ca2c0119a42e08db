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

// The contract's topics and tables (DESIGN.md), in the summary's order.
var (
	dataTopics = []string{"crypto-prices", "crypto-ohlcv", "crypto-analytics"}
	tables     = []string{"crypto_prices", "crypto_ohlcv", "crypto_market_analytics"}
	// summaryCoins are the coins whose last price per exchange is shown.
	summaryCoins = []struct{ id, label string }{{"bitcoin", "BTC"}, {"ethereum", "ETH"}}
)

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

// summary prints what the demo has done so far. It is used by one
// goroutine.
type summary struct {
	adm   *kadm.Client
	conn  *pgx.Conn
	start time.Time

	lastAt       time.Time
	lastProduced int64
	lastRows     int64
}

func newSummary(ctx context.Context, adm *kadm.Client, dsn string) (*summary, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("connect for the summary: %w", err)
	}
	now := time.Now()
	return &summary{adm: adm, conn: conn, start: now, lastAt: now}, nil
}

func (s *summary) close() { _ = s.conn.Close(context.Background()) }

// print writes one summary block. A part that cannot be read shows its
// error instead: the demo keeps running through a broker or database
// hiccup.
func (s *summary) print(ctx context.Context, out io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, summaryTimeout)
	defer cancel()
	now := time.Now()
	secs := now.Sub(s.lastAt).Seconds()
	var b strings.Builder
	fmt.Fprintf(&b, "── qiflow dev %s ──\n", now.Sub(s.start).Round(time.Second))

	ends, err := s.endOffsets(ctx)
	if err != nil {
		fmt.Fprintf(&b, "  topics        %v\n", err)
	} else {
		var produced int64
		for _, t := range dataTopics {
			produced += ends[t]
		}
		fmt.Fprintf(&b, "  feed          %6.0f msg/s  %d produced\n", float64(produced-s.lastProduced)/secs, produced)
		s.lastProduced = produced
		b.WriteString("  dead letters ")
		for _, t := range dataTopics {
			fmt.Fprintf(&b, " %s %d", t+".dlq", ends[t+".dlq"])
		}
		b.WriteString("\n")
	}

	var rows []int64
	var total int64
	for _, t := range tables {
		var n int64
		if err := s.conn.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{t}.Sanitize()).Scan(&n); err != nil {
			fmt.Fprintf(&b, "  rows          %s: %v\n", t, err)
			rows = nil
			break
		}
		rows = append(rows, n)
		total += n
	}
	if rows != nil {
		fmt.Fprintf(&b, "  rows          %6.0f rows/s", float64(total-s.lastRows)/secs)
		for i, t := range tables {
			fmt.Fprintf(&b, "  %s %d", t, rows[i])
		}
		b.WriteString("\n")
		s.lastRows = total
	}
	s.lastAt = now

	if err := s.lastPrices(ctx, &b); err != nil {
		fmt.Fprintf(&b, "  last prices   %v\n", err)
	}
	_, _ = io.WriteString(out, b.String())
}

// consumerGroups are the ingest pipelines' groups (DESIGN.md).
var consumerGroups = []string{"qiflow-prices", "qiflow-ohlcv", "qiflow-analytics"}

// printLag writes how many messages each ingest group has not committed:
// after a graceful stop they are what the next run reads first.
func (s *summary) printLag(ctx context.Context, out io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, summaryTimeout)
	defer cancel()
	lags, err := s.adm.Lag(ctx, consumerGroups...)
	if err != nil {
		fmt.Fprintf(out, "  uncommitted   %v\n", err)
		return
	}
	var b strings.Builder
	b.WriteString("  uncommitted  ")
	for _, g := range consumerGroups {
		l, ok := lags[g]
		if !ok || l.Error() != nil {
			fmt.Fprintf(&b, " %s ?", g)
			continue
		}
		fmt.Fprintf(&b, " %s %d", g, l.Lag.Total())
	}
	b.WriteString("\n")
	_, _ = io.WriteString(out, b.String())
}

// endOffsets returns the end offset of each partition summed by topic,
// for the data topics and their dead-letter topics.
func (s *summary) endOffsets(ctx context.Context) (map[string]int64, error) {
	topics := make([]string, 0, 2*len(dataTopics))
	for _, t := range dataTopics {
		topics = append(topics, t, t+".dlq")
	}
	listed, err := s.adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("list end offsets: %w", err)
	}
	sums := map[string]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			sums[o.Topic] += o.Offset
		}
	})
	return sums, nil
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
