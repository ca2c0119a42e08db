package external

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestALineWriterCapsLinesAndFlushesTheLastPartialOne(t *testing.T) {
	var lines []string
	w := &lineWriter{line: func(b []byte) { lines = append(lines, string(b)) }}
	long := bytes.Repeat([]byte("x"), 2*maxLineBytes+10)
	_, _ = w.Write([]byte("first\nsec"))
	_, _ = w.Write([]byte("ond\n"))
	_, _ = w.Write(long)
	assert.Equal(t, []string{"first", "second", string(long[:maxLineBytes]), string(long[:maxLineBytes])}, lines,
		"a line without a newline is logged in pieces, not buffered without limit")
	assert.Len(t, w.buf, 10)

	_, _ = w.Write([]byte("\nlast words"))
	w.flush()
	assert.Equal(t, []string{string(long[:10]), "last words"}, lines[4:], "the last partial line is logged at exit")
	w.flush()
	assert.Len(t, lines, 6, "once")
}
