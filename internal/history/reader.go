package history

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// Row is one row of the range.
type Row struct {
	// Time is the row's time column.
	Time time.Time
	// Key holds the key columns' values as text.
	Key []string
	// Message is the row as one wire-format JSON object. It shares memory
	// with the other messages of its page: copy it to keep it past the
	// next call to Next, and do not append to it.
	Message []byte
}

// Position returns the position just after r.
func (r *Row) Position() Position { return Position{Time: r.Time, Key: r.Key} }

// Reader pages through a Range in (time, key) order. It is not safe for
// concurrent use.
type Reader struct {
	db    Querier
	rng   Range
	plan  *plan
	keys  [][]byte // the JSON keys of the emitted columns, `"name":`
	after *Position
	read  int64
	done  bool
	// settle is how old a tail's rows must be (Follow).
	settle time.Duration
	// rowBytes is the mean message size of the last page.
	rowBytes int
}

// NewReader looks the table up and prepares the read of r.
func NewReader(ctx context.Context, db Querier, r Range) (*Reader, error) {
	return newReader(ctx, db, r, false, 0)
}

// Follow is NewReader for a tail: r.To may be zero, and rows are read only
// once they are settle old by the server's clock, so that rows committed a
// little out of time order are still read in order. When it has caught up,
// Next returns an empty page rather than io.EOF; it returns io.EOF only
// once To is settled and read.
func Follow(ctx context.Context, db Querier, r Range, settle time.Duration) (*Reader, error) {
	if settle < 0 {
		return nil, fmt.Errorf("history: negative settle %s", settle)
	}
	return newReader(ctx, db, r, true, settle)
}

func newReader(ctx context.Context, db Querier, r Range, follow bool, settle time.Duration) (*Reader, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	if r.PageSize == 0 {
		r.PageSize = DefaultPageSize
	}
	t, err := describeTable(ctx, db, r.Table)
	if err != nil {
		return nil, err
	}
	p, err := newPlan(t, r, follow)
	if err != nil {
		return nil, err
	}
	if r.After != nil && len(r.After.Key) != len(p.keys) {
		return nil, fmt.Errorf("history: the position has %d key values, the key columns are %d", len(r.After.Key), len(p.keys))
	}
	rd := &Reader{db: db, rng: r, plan: p, after: r.After, settle: settle}
	for _, c := range p.out {
		rd.keys = append(rd.keys, appendString(nil, []byte(WireKey(c.name))))
	}
	return rd, nil
}

// Columns returns the emitted columns, in message order.
func (rd *Reader) Columns() []string {
	names := make([]string, len(rd.plan.out))
	for i, c := range rd.plan.out {
		names[i] = c.name
	}
	return names
}

// TimeColumn returns the column the read is ordered by.
func (rd *Reader) TimeColumn() string { return rd.plan.timeCol.name }

// KeyColumns returns the columns that order rows of one time.
func (rd *Reader) KeyColumns() []string {
	names := make([]string, len(rd.plan.keys))
	for i, c := range rd.plan.keys {
		names[i] = c.name
	}
	return names
}

// Position returns the position after the last row read, nil before the
// first.
func (rd *Reader) Position() *Position { return rd.after }

// Remaining counts the rows of the range after the current position, up
// to the limit. In a tail it counts only the rows settled so far.
func (rd *Reader) Remaining(ctx context.Context) (int64, error) {
	sql := rd.plan.countFirst
	if rd.after != nil {
		sql = rd.plan.countNext
	}
	var n int64
	if err := rd.db.QueryRow(ctx, sql, rd.plan.args(&rd.rng, rd.after, rd.settle, 0)...).Scan(&n); err != nil {
		return 0, fmt.Errorf("history: count %s: %w", rd.rng.Table, err)
	}
	if rd.rng.Limit > 0 {
		n = min(n, rd.rng.Limit-rd.read)
	}
	return n, nil
}

// Next reads the next page. It returns io.EOF after the last row of the
// range (or of the limit); in a tail that has caught up, an empty page.
func (rd *Reader) Next(ctx context.Context) ([]Row, error) {
	if rd.done {
		return nil, io.EOF
	}
	limit := rd.rng.PageSize
	if rd.rng.Limit > 0 {
		limit = int(min(int64(limit), rd.rng.Limit-rd.read))
	}
	if limit == 0 {
		rd.done = true
		return nil, io.EOF
	}
	sql := rd.plan.first
	if rd.after != nil {
		sql = rd.plan.next
	}
	rows, err := rd.db.Query(ctx, sql, rd.plan.args(&rd.rng, rd.after, rd.settle, limit)...)
	if err != nil {
		return nil, fmt.Errorf("history: read %s: %w", rd.rng.Table, err)
	}
	page, err := rd.scan(rows, limit)
	if err != nil {
		return nil, fmt.Errorf("history: read %s: %w", rd.rng.Table, err)
	}
	rd.read += int64(len(page))
	if len(page) > 0 {
		last := page[len(page)-1].Position()
		rd.after = &last
	}
	if len(page) < limit && !(rd.plan.follow && !rd.settledPastTo()) {
		rd.done = true
		if len(page) == 0 {
			return nil, io.EOF
		}
	}
	return page, nil
}

// settledPastTo reports whether a tail's upper bound has reached To, so
// that no row of the range can still arrive. The client's clock decides,
// plus a second for skew.
func (rd *Reader) settledPastTo() bool {
	return !rd.rng.To.IsZero() && time.Since(rd.rng.To) > rd.settle+time.Second
}

// scan turns the rows of one page into Rows. Their messages share one
// buffer, and their keys one string and one slice, so that a page costs a
// handful of allocations rather than several per row.
func (rd *Reader) scan(rows pgx.Rows, limit int) ([]Row, error) {
	defer rows.Close()
	page := make([]Row, 0, limit)
	buf := make([]byte, 0, rd.bufHint(limit))
	offsets := make([]int, 0, limit+1)
	nk := len(rd.plan.keys)
	var keyBuf []byte
	keyEnds := make([]int, 0, limit*nk)
	// times holds, per emitted column, the last timestamp and its JSON.
	times := make([]struct{ raw, text []byte }, len(rd.plan.out))
	for rows.Next() {
		raw := rows.RawValues()
		t, err := decodeTime(raw[rd.plan.timeIndex])
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", rd.plan.timeCol.name, err)
		}
		for _, i := range rd.plan.keyIndexes {
			keyBuf = append(keyBuf, raw[i]...)
			keyEnds = append(keyEnds, len(keyBuf))
		}
		offsets = append(offsets, len(buf))
		buf = append(buf, '{')
		for i, c := range rd.plan.out {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, rd.keys[i]...)
			buf = append(buf, ':')
			if c.kind == kindTime && raw[i] != nil && string(raw[i]) == string(times[i].raw) {
				// Rows of one time come together: format it once.
				buf = append(buf, times[i].text...)
				continue
			}
			start := len(buf)
			if buf, err = appendValue(buf, c.kind, raw[i]); err != nil {
				return nil, fmt.Errorf("column %s: %w", c.name, err)
			}
			if c.kind == kindTime && raw[i] != nil {
				times[i].raw = append(times[i].raw[:0], raw[i]...)
				times[i].text = append(times[i].text[:0], buf[start:]...)
			}
		}
		buf = append(buf, '}')
		page = append(page, Row{Time: t})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(page) > 0 {
		rd.rowBytes = len(buf) / len(page)
	}
	// The buffers may have moved while they grew: slice them last.
	offsets = append(offsets, len(buf))
	keyText := string(keyBuf)
	keys := make([]string, len(keyEnds))
	start := 0
	for i, end := range keyEnds {
		keys[i] = keyText[start:end]
		start = end
	}
	for i := range page {
		page[i].Message = buf[offsets[i]:offsets[i+1]:offsets[i+1]]
		page[i].Key = keys[i*nk : (i+1)*nk : (i+1)*nk]
	}
	return page, nil
}

// bufHint is the message buffer a page of limit rows likely needs, from
// the size of the rows of the page before, with room to spare.
func (rd *Reader) bufHint(limit int) int {
	per := rd.rowBytes
	if per == 0 {
		per = 256
	}
	return limit * (per + per/8 + 16)
}
