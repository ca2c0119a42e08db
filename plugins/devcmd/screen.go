package devcmd

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/term"
)

// screen redraws the summary in place on a terminal. A log line written
// between two draws (a pipeline's warning, say) is kept: the next draw
// starts below it instead of over it.
type screen struct {
	out *os.File
	// mu orders draws and log writes, and guards drawn.
	mu     sync.Mutex
	errOut io.Writer
	drawn  int // lines of the last draw still on the screen; 0 after a log line
}

// newScreen returns a screen on out when out is a terminal, else nil.
func newScreen(out, errOut io.Writer) *screen {
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &screen{out: f, errOut: errOut}
}

// draw replaces the last draw with block, each line cut to the terminal's
// width so that the line count it moves up by is exact.
func (s *screen) draw(block string) {
	width := 0
	if w, _, err := term.GetSize(int(s.out.Fd())); err == nil {
		width = w
	}
	lines := strings.Split(strings.TrimSuffix(block, "\n"), "\n")
	var b strings.Builder
	for _, l := range lines {
		if r := []rune(l); width > 0 && len(r) >= width {
			l = string(r[:width-1])
		}
		b.WriteString(l)
		b.WriteString("\x1b[K\n") // clear what a longer old line left
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.drawn > 0 {
		fmt.Fprintf(s.out, "\x1b[%dA\x1b[J", s.drawn) // up to the last draw's first line, clear below
	}
	_, _ = io.WriteString(s.out, b.String())
	s.drawn = len(lines)
}

// release leaves the last draw on the screen: what is written next goes
// below it.
func (s *screen) release() {
	s.mu.Lock()
	s.drawn = 0
	s.mu.Unlock()
}

// logWriter returns a writer for log lines that keeps them on the screen.
func (s *screen) logWriter() io.Writer { return logWriter{s} }

type logWriter struct{ s *screen }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.mu.Lock()
	defer w.s.mu.Unlock()
	w.s.drawn = 0
	return w.s.errOut.Write(p)
}
