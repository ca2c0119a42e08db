package replay

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// fakeClock advances by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestProgressShowsRowsRateAndTimeLeft(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgress(&out, true, 1_000_000)
	p.now, p.start, p.shown = clock.now, clock.t, clock.t

	clock.t = clock.t.Add(100 * time.Millisecond)
	p.update(10_000)
	assert.Empty(t, out.String(), "not redrawn within the refresh interval")

	clock.t = clock.t.Add(time.Second - 100*time.Millisecond)
	p.update(250_000)
	assert.Equal(t, "\r\033[Kreplayed 250,000 of 1,000,000 rows (25.0%), 250,000 rows/s, ~3s left", out.String())
	p.finish()
	assert.True(t, strings.HasSuffix(out.String(), "\r\033[K"), "the line is cleared at the end")
}

func TestProgressWritesPlainLinesOffATerminal(t *testing.T) {
	var out bytes.Buffer
	clock := &fakeClock{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	p := newProgress(&out, false, 100)
	p.now, p.start, p.shown = clock.now, clock.t, clock.t
	clock.t = clock.t.Add(time.Second)
	p.update(50)
	assert.Empty(t, out.String(), "a log gets a line every few seconds, not every page")
	clock.t = clock.t.Add(logRefresh)
	p.update(60)
	assert.Equal(t, "replayed 60 of 100 rows (60.0%), 5 rows/s, ~7s left\n", out.String())
	assert.NotContains(t, out.String(), "\033")
}

func TestGrouped(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567"} {
		assert.Equal(t, want, grouped(n))
	}
}
