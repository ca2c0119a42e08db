package external

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// pluginOutput logs what a plugin process writes to its standard error and,
// through go-plugin's stdio stream, to os.Stdout and os.Stderr. Lines in
// hclog's JSON layout, which the SDK gives slog, keep their level and
// attributes; other lines are logged at INFO, except a panic or fatal error
// and the stack trace after it, which are logged at ERROR.
type pluginOutput struct {
	log *service.Logger

	mu      sync.Mutex
	inPanic bool
	writers []*lineWriter
}

func newPluginOutput(log *service.Logger) *pluginOutput {
	return &pluginOutput{log: log}
}

// writer returns a writer for one stream. Each stream needs its own, since
// it buffers partial lines; flush logs what they hold.
func (o *pluginOutput) writer() *lineWriter {
	w := &lineWriter{line: o.logLine}
	o.mu.Lock()
	o.writers = append(o.writers, w)
	o.mu.Unlock()
	return w
}

// flush logs the partial last line of each stream, once the process has
// exited: its last words before a crash often lack a newline.
func (o *pluginOutput) flush() {
	o.mu.Lock()
	writers := o.writers
	o.mu.Unlock()
	for _, w := range writers {
		w.flush()
	}
}

func (o *pluginOutput) logLine(line []byte) {
	line = bytes.TrimRight(line, "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if line[0] == '{' {
		var entry map[string]any
		if json.Unmarshal(line, &entry) == nil {
			if msg, ok := entry["@message"].(string); ok {
				o.logEntry(msg, entry)
				return
			}
		}
	}
	text := string(line)
	o.mu.Lock()
	if strings.HasPrefix(text, "panic: ") || strings.HasPrefix(text, "fatal error: ") {
		o.inPanic = true
	}
	inPanic := o.inPanic
	o.mu.Unlock()
	if inPanic {
		o.log.Error(text)
		return
	}
	o.log.Info(text)
}

// logEntry logs an hclog JSON record at its level, with its attributes.
func (o *pluginOutput) logEntry(msg string, entry map[string]any) {
	level, _ := entry["@level"].(string)
	var kvs []any
	for k, v := range entry {
		if !strings.HasPrefix(k, "@") {
			kvs = append(kvs, k, v)
		}
	}
	log := o.log
	if len(kvs) > 0 {
		log = log.With(kvs...)
	}
	switch level {
	case "trace":
		log.Trace(msg)
	case "debug":
		log.Debug(msg)
	case "warn":
		log.Warn(msg)
	case "error":
		log.Error(msg)
	default:
		log.Info(msg)
	}
}

// maxLineBytes is the longest line a lineWriter buffers: a longer one is
// logged in pieces of this size, so that a plugin writing without newlines
// cannot make qiflow buffer without limit.
const maxLineBytes = 64 << 10

// lineWriter calls line for every complete line written to it.
type lineWriter struct {
	line func([]byte)

	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			if len(w.buf) < maxLineBytes {
				break
			}
			i = maxLineBytes
			w.line(w.buf[:i])
			w.buf = w.buf[i:]
			continue
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) == 0 {
		w.buf = nil // let a large line's buffer go
	}
	return len(p), nil
}

// flush logs a partial line that is left.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(w.buf)
	}
	w.buf = nil
}

// hclogAdapter is the logger go-plugin gets for its own messages: starting
// the process, the handshake, its exit. They are logged at DEBUG, except
// errors such as an exit status, at WARN; the processor logs what matters
// itself. The plugin's own output does not come through here but through
// pluginOutput, so Named, which go-plugin uses for the plugin's output,
// returns a logger that discards.
type hclogAdapter struct {
	hclog.Logger // a null logger, for the methods go-plugin does not use
	log          *service.Logger
	args         []any
}

func newHclogAdapter(log *service.Logger) hclog.Logger {
	return &hclogAdapter{Logger: hclog.NewNullLogger(), log: log}
}

func (a *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	text := "go-plugin: " + msg + formatArgs(append(a.args[:len(a.args):len(a.args)], args...))
	if level >= hclog.Error {
		a.log.Warn(text)
		return
	}
	a.log.Debug(text)
}

func (a *hclogAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hclogAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hclogAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hclogAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hclogAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *hclogAdapter) IsTrace() bool                 { return false }
func (a *hclogAdapter) IsDebug() bool                 { return true }
func (a *hclogAdapter) IsInfo() bool                  { return true }
func (a *hclogAdapter) IsWarn() bool                  { return true }
func (a *hclogAdapter) IsError() bool                 { return true }
func (a *hclogAdapter) GetLevel() hclog.Level         { return hclog.Debug }

func (a *hclogAdapter) With(args ...any) hclog.Logger {
	return &hclogAdapter{Logger: a.Logger, log: a.log, args: append(a.args[:len(a.args):len(a.args)], args...)}
}

func (a *hclogAdapter) Named(string) hclog.Logger { return discardLogger{hclog.NewNullLogger()} }

// discardLogger discards, and says so with its level, so that go-plugin
// does not parse the plugin's output for it.
type discardLogger struct{ hclog.Logger }

func (discardLogger) GetLevel() hclog.Level { return hclog.Off }

// formatArgs renders hclog's key/value arguments as " key=value ...".
func formatArgs(args []any) string {
	var b strings.Builder
	for i := 0; i+1 < len(args); i += 2 {
		fmt.Fprintf(&b, " %v=%v", args[i], args[i+1])
	}
	return b.String()
}
