package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The statements of one write. Rows are COPYed into a per-connection
// temporary table, then moved into the target in the same transaction, so
// that keys the table already holds are skipped, not errors.
const (
	columns = "last_updated, coin_id, symbol, exchange_id, usd_price, market_cap, volume_24h, change_24h, change_7d, source, attribution"

	createStage = `CREATE TEMP TABLE price_stage (
  last_updated timestamptz, coin_id varchar(64), symbol varchar(32), exchange_id varchar(64),
  usd_price numeric(20,8), market_cap numeric(24,2), volume_24h numeric(24,2),
  change_24h numeric(10,4), change_7d numeric(10,4), source varchar(64), attribution text
) ON COMMIT DELETE ROWS`
	copyStage = "COPY price_stage (" + columns + ") FROM STDIN (FORMAT binary)"
	// The stage holds the rows in key order (writer.prepare sorts them) and
	// a sequential scan of it returns them in that order, so concurrent
	// writers take the keys' locks in one order and do not deadlock.
	moveStage = "INSERT INTO crypto_prices (" + columns + ") SELECT " + columns + " FROM price_stage ON CONFLICT DO NOTHING; COMMIT"
)

// writer decodes batches and writes them on its own connection.
type writer struct {
	dsn  string
	conn *pgconn.PgConn
	dec  decoder
	rows []price
	keep []int // indexes into rows, in key order, first of each key
	buf  []byte
}

// stats are what one batch came to.
type stats struct {
	inserted, duplicates, deadLetters, rollbacks int
}

func (w *writer) connect(ctx context.Context) error {
	cfg, err := pgconn.ParseConfig(w.dsn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// Offsets are committed after the write, so the write's commit must
	// survive a crash of the database, whatever the server's default: the
	// job qiflow does (its sessions set the same).
	if _, set := cfg.RuntimeParams["synchronous_commit"]; !set {
		cfg.RuntimeParams["synchronous_commit"] = "on"
	}
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(ctx, createStage).ReadAll(); err != nil {
		_ = conn.Close(ctx)
		return fmt.Errorf("create stage: %w", err)
	}
	w.conn = conn
	return nil
}

// prepare decodes the records of a batch: the valid ones into the binary
// COPY of their rows, in key order with the first message of each key
// kept, and the others into dead letters for dlqTopic.
func (w *writer) prepare(records []*kgo.Record, dlqTopic string) (dead []*kgo.Record, st stats) {
	w.dec.reset()
	w.rows = w.rows[:0]
	for _, r := range records {
		p, err := w.dec.decode(r.Value)
		if err != nil {
			dead = append(dead, deadLetter(r, dlqTopic, err))
			continue
		}
		w.rows = append(w.rows, p)
	}
	w.keep = w.keep[:0]
	for i := range w.rows {
		w.keep = append(w.keep, i)
	}
	// Stable, so that of equal keys the first message comes first.
	slices.SortStableFunc(w.keep, func(a, b int) int { return compareKeys(&w.rows[a], &w.rows[b]) })
	w.keep = slices.CompactFunc(w.keep, func(a, b int) bool { return compareKeys(&w.rows[a], &w.rows[b]) == 0 })
	st.duplicates = len(w.rows) - len(w.keep)
	st.deadLetters = len(dead)

	w.buf = append(w.buf[:0], copySignature...)
	for _, i := range w.keep {
		w.buf = appendRow(w.buf, &w.rows[i])
	}
	w.buf = binary.BigEndian.AppendUint16(w.buf, 0xffff) // the trailer
	return dead, st
}

// compareKeys orders rows by the primary key, as the table compares it.
func compareKeys(a, b *price) int {
	if c := cmp.Compare(a.lastUpdated, b.lastUpdated); c != 0 {
		return c
	}
	if c := bytes.Compare(a.coinID, b.coinID); c != 0 {
		return c
	}
	return bytes.Compare(a.exchangeID, b.exchangeID)
}

// write runs the prepared batch's transaction, retrying transient failures
// with capped backoff until ctx ends, and reports the rows it inserted and
// the transactions that rolled back.
func (w *writer) write(ctx context.Context, st *stats) error {
	if len(w.keep) == 0 {
		return nil
	}
	for attempt := 1; ; attempt++ {
		if w.conn == nil {
			if err := w.connect(ctx); err != nil {
				if ctx.Err() != nil {
					return err
				}
				sleep(ctx, attempt)
				continue
			}
		}
		inserted, began, err := w.transaction(ctx)
		if err == nil {
			st.inserted = int(inserted)
			return nil
		}
		if began {
			st.rollbacks++
		}
		if !transient(err) || ctx.Err() != nil {
			return err
		}
		if w.conn.IsClosed() {
			w.conn = nil
		}
		sleep(ctx, attempt)
	}
}

// transaction is BEGIN, the COPY into the stage, and the move into the
// table with COMMIT: three round trips.
func (w *writer) transaction(ctx context.Context) (inserted int64, began bool, err error) {
	if _, err := w.conn.Exec(ctx, "BEGIN").ReadAll(); err != nil {
		return 0, false, fmt.Errorf("begin: %w", err)
	}
	if _, err := w.conn.CopyFrom(ctx, bytes.NewReader(w.buf), copyStage); err != nil {
		return 0, true, errors.Join(fmt.Errorf("copy into the stage: %w", err), w.rollback(ctx))
	}
	results, err := w.conn.Exec(ctx, moveStage).ReadAll()
	if err != nil {
		return 0, true, errors.Join(fmt.Errorf("insert from the stage: %w", err), w.rollback(ctx))
	}
	return results[0].CommandTag.RowsAffected(), true, nil
}

func (w *writer) rollback(ctx context.Context) error {
	if w.conn.IsClosed() {
		return nil
	}
	if _, err := w.conn.Exec(ctx, "ROLLBACK").ReadAll(); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// transient reports whether a write may succeed if repeated: a lost
// connection, or a SQLSTATE of class 08, 40, 53 or 57P0x.
func transient(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return true
	}
	for _, class := range []string{"08", "40", "53", "57P0"} {
		if strings.HasPrefix(pgErr.Code, class) {
			return true
		}
	}
	return false
}

// sleep waits before the attempt-th retry: 100 ms, doubling, at most 5 s.
func sleep(ctx context.Context, attempt int) {
	select {
	case <-ctx.Done():
	case <-time.After(min(100*time.Millisecond<<min(attempt-1, 6), 5*time.Second)):
	}
}

// deadLetter is r for the dead-letter topic, with the headers qiflow's
// dead letters carry.
func deadLetter(r *kgo.Record, topic string, err error) *kgo.Record {
	code := codeInvalidValue
	var rej *rejection
	if errors.As(err, &rej) {
		code = rej.code
	}
	header := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	return &kgo.Record{
		Topic: topic,
		Key:   r.Key,
		Value: r.Value,
		Headers: []kgo.RecordHeader{
			header("qiflow-error-category", "BUSINESS"),
			header("qiflow-error-code", code),
			header("qiflow-error", err.Error()),
			header("qiflow-source-topic", r.Topic),
			header("qiflow-source-partition", fmt.Sprint(r.Partition)),
			header("qiflow-source-offset", fmt.Sprint(r.Offset)),
		},
	}
}

// copySignature starts a binary COPY stream: the signature, no flags and
// no header extension.
var copySignature = []byte("PGCOPY\n\xff\r\n\x00" + "\x00\x00\x00\x00" + "\x00\x00\x00\x00")

// appendRow appends p as one tuple of the binary COPY format: the field
// count, then each field as its length and its bytes (-1 for NULL).
func appendRow(buf []byte, p *price) []byte {
	buf = binary.BigEndian.AppendUint16(buf, 11)
	buf = binary.BigEndian.AppendUint32(buf, 8)
	buf = binary.BigEndian.AppendUint64(buf, uint64(p.lastUpdated))
	buf = appendText(buf, p.coinID)
	buf = appendText(buf, p.symbol)
	buf = appendText(buf, p.exchangeID)
	buf = appendNumeric(buf, p.usdPrice)
	buf = appendNumeric(buf, p.marketCap)
	buf = appendNumeric(buf, p.volume24h)
	buf = appendNumeric(buf, p.change24h)
	buf = appendNumeric(buf, p.change7d)
	buf = appendText(buf, p.source)
	return appendText(buf, p.attribution)
}

func appendText(buf, s []byte) []byte {
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(s)))
	return append(buf, s...)
}

// appendNumeric appends n in NUMERIC's binary format: the number of
// base-10000 digits, the power of 10000 of the first, the sign and the
// display scale, then the digits, grouped so that the decimal point falls
// between two of them.
func appendNumeric(buf []byte, n decimal) []byte {
	if !n.valid {
		return binary.BigEndian.AppendUint32(buf, 0xffffffff)
	}
	dscale := max(0, -n.exp)
	if len(n.digits) == 0 {
		buf = binary.BigEndian.AppendUint32(buf, 8)
		return append(buf, 0, 0, 0, 0, 0, 0, byte(dscale>>8), byte(dscale))
	}
	top := len(n.digits) - 1 + n.exp // the power of ten of the first digit
	weight, last := floorDiv(top, 4), floorDiv(n.exp, 4)
	groups := weight - last + 1
	buf = binary.BigEndian.AppendUint32(buf, uint32(8+2*groups))
	buf = binary.BigEndian.AppendUint16(buf, uint16(groups))
	buf = binary.BigEndian.AppendUint16(buf, uint16(int16(weight)))
	sign := uint16(0)
	if n.neg {
		sign = 0x4000
	}
	buf = binary.BigEndian.AppendUint16(buf, sign)
	buf = binary.BigEndian.AppendUint16(buf, uint16(dscale))
	for g := weight; g >= last; g-- {
		v := uint16(0)
		for power := 4*g + 3; power >= 4*g; power-- {
			v *= 10
			if k := top - power; k >= 0 && k < len(n.digits) {
				v += uint16(n.digits[k] - '0')
			}
		}
		buf = binary.BigEndian.AppendUint16(buf, v)
	}
	return buf
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
