package replay

import (
	"fmt"
	"io"
	"time"
)

// Progress refresh intervals: a terminal line is redrawn often, a log line
// (stderr not a terminal) is written rarely.
const (
	terminalRefresh = 200 * time.Millisecond
	logRefresh      = 10 * time.Second
)

// progress shows how far a replay is: rows, rows/s and an estimate of the
// time left. On a terminal it redraws one line; otherwise it writes a plain
// line now and then.
type progress struct {
	w        io.Writer
	terminal bool
	total    int64 // rows this run will replay, -1 when unknown
	start    time.Time
	shown    time.Time
	now      func() time.Time
}

func newProgress(w io.Writer, terminal bool, total int64) *progress {
	p := &progress{w: w, terminal: terminal, total: total, now: time.Now}
	p.start = p.now()
	p.shown = p.start
	return p
}

// update shows done unless it was shown a moment ago.
func (p *progress) update(done int64) {
	now := p.now()
	every := logRefresh
	if p.terminal {
		every = terminalRefresh
	}
	if now.Sub(p.shown) < every {
		return
	}
	p.shown = now
	line := p.line(done, now)
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// finish ends the terminal line.
func (p *progress) finish() {
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func (p *progress) line(done int64, now time.Time) string {
	elapsed := now.Sub(p.start).Seconds()
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed
	}
	if p.total < 0 {
		return fmt.Sprintf("replayed %s rows, %s rows/s", grouped(done), grouped(int64(rate)))
	}
	left := "unknown"
	if rate > 0 {
		eta := time.Duration(float64(p.total-done) / rate * float64(time.Second))
		left = "~" + eta.Round(time.Second).String() + " left"
	}
	pct := 100.0
	if p.total > 0 {
		pct = 100 * float64(done) / float64(p.total)
	}
	return fmt.Sprintf("replayed %s of %s rows (%.1f%%), %s rows/s, %s", grouped(done), grouped(p.total), pct, grouped(int64(rate)), left)
}

// grouped writes n with thousands separators: 1234567 → 1,234,567.
func grouped(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return s
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
