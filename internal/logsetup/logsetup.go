// Package logsetup builds the one logger of a qiflow process from a Benthos
// `logger:` config section, so that `qiflow run --watch`, `qiflow streams
// --watch` and `qiflow dev` print what plain `qiflow run` prints: the same
// format (logfmt or json), the same level names and the same keys ("level",
// "msg", "time", "@service", and Benthos's "path" and "label").
//
// The defaults, ${VAR} interpolation and the check of the format are
// Benthos's own: a section is parsed through its logger spec
// (service.StreamBuilder.SetLoggerYAML), never through a copy of it.
package logsetup

import (
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"

	// AsYAML, through which Parse reads Benthos's parsed logger section,
	// renders the whole config: its default input, output and metrics
	// (stdin, stdout, prometheus) must be registered.
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
)

// The formats of logger.format. Benthos names the text format logfmt;
// "text" is accepted as the same thing.
const (
	FormatJSON   = "json"
	FormatLogfmt = "logfmt"
	formatText   = "text"
)

// Config is a parsed `logger:` section, with Benthos's defaults filled in.
type Config struct {
	Level         string            `yaml:"level"`
	Format        string            `yaml:"format"`
	AddTimestamp  bool              `yaml:"add_timestamp"`
	LevelName     string            `yaml:"level_name"`
	MessageName   string            `yaml:"message_name"`
	TimestampName string            `yaml:"timestamp_name"`
	StaticFields  map[string]string `yaml:"static_fields"`
	File          struct {
		Path   string `yaml:"path"`
		Rotate bool   `yaml:"rotate"`
	} `yaml:"file"`
}

// Default is the logger of a config without a logger section: Benthos's
// defaults (INFO, logfmt, with timestamps, @service=benthos).
func Default() Config {
	c := defaults()
	c.StaticFields = maps.Clone(c.StaticFields)
	return c
}

// defaults parses an empty section once: it costs a stream builder and a
// render of its whole config.
var defaults = sync.OnceValue(func() Config {
	c, err := Parse("", nil)
	if err != nil {
		// Benthos's own defaults always parse; this is a broken build.
		panic(fmt.Sprintf("logsetup: Benthos's default logger config: %v", err))
	}
	return c
})

// Parse reads the fields of a `logger:` section (YAML, "" for none), with
// ${VAR} resolved through lookup (nil: the environment).
func Parse(section string, lookup func(string) (string, bool)) (Config, error) {
	if strings.TrimSpace(section) == "" {
		section = "{}"
	}
	sb := service.NewStreamBuilder()
	if lookup != nil {
		sb.SetEnvVarLookupFunc(lookup)
	}
	if err := sb.SetLoggerYAML(section); err != nil {
		return Config{}, fmt.Errorf("logger: %w", err)
	}
	full, err := sb.AsYAML()
	if err != nil {
		return Config{}, fmt.Errorf("logger: %w", err)
	}
	var parsed struct {
		Logger Config `yaml:"logger"`
	}
	if err := yaml.Unmarshal([]byte(full), &parsed); err != nil {
		return Config{}, fmt.Errorf("logger: %w", err)
	}
	return parsed.Logger, nil
}

// FromPipeline reads the logger section of a pipeline config's text.
func FromPipeline(text string, lookup func(string) (string, bool)) (Config, error) {
	var top struct {
		Logger yaml.Node `yaml:"logger"`
	}
	if err := yaml.Unmarshal([]byte(text), &top); err != nil {
		return Config{}, fmt.Errorf("invalid YAML: %w", err)
	}
	if top.Logger.IsZero() {
		return Parse("", lookup)
	}
	section, err := yaml.Marshal(&top.Logger)
	if err != nil {
		return Config{}, err
	}
	return Parse(string(section), lookup)
}

// Check reports a level or format that New would refuse.
func (c Config) Check() error {
	if _, err := ParseLevel(c.Level); err != nil {
		return fmt.Errorf("logger.level: %w", err)
	}
	if err := CheckFormat(c.Format); err != nil {
		return fmt.Errorf("logger.format: %w", err)
	}
	return nil
}

// CheckFormat reports a format that is neither json nor logfmt (or text,
// the same as logfmt).
func CheckFormat(name string) error {
	switch strings.ToLower(name) {
	case FormatJSON, FormatLogfmt, formatText:
		return nil
	}
	return fmt.Errorf("%q is not a log format: want json or logfmt", name)
}

// levelOff is above every level slog emits: logger.level OFF or NONE.
const levelOff = slog.Level(math.MaxInt32)

// ParseLevel maps Benthos's level names (OFF, FATAL, ERROR, WARN, INFO,
// DEBUG, TRACE, ALL, NONE; any case) to slog's. An empty name is INFO.
func ParseLevel(name string) (slog.Level, error) {
	switch strings.ToUpper(name) {
	case "", "INFO":
		return slog.LevelInfo, nil
	case "DEBUG":
		return slog.LevelDebug, nil
	case "TRACE", "ALL":
		return slog.LevelDebug - 4, nil
	case "WARN", "WARNING":
		return slog.LevelWarn, nil
	case "ERROR", "FATAL":
		return slog.LevelError, nil
	case "OFF", "NONE":
		return levelOff, nil
	}
	return 0, fmt.Errorf("%q is not a log level: want OFF, ERROR, WARN, INFO, DEBUG or TRACE", name)
}

// New returns the logger c describes, writing to w unless c names a file.
// The second result closes that file; it is a no-op otherwise.
func New(w io.Writer, c Config) (*slog.Logger, func() error, error) {
	if err := c.Check(); err != nil {
		return nil, nil, err
	}
	level, _ := ParseLevel(c.Level)
	closeFile := func() error { return nil }
	if c.File.Path != "" {
		f, err := os.OpenFile(c.File.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o666)
		if err != nil {
			return nil, nil, fmt.Errorf("logger.file.path: %w", err)
		}
		w, closeFile = f, f.Close
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: c.replaceAttr}
	var h slog.Handler
	if strings.EqualFold(c.Format, FormatJSON) {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	keys := make([]string, 0, len(c.StaticFields))
	for k := range c.StaticFields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	static := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		static = append(static, slog.String(k, c.StaticFields[k]))
	}
	log := slog.New(h.WithAttrs(static))
	if c.File.Rotate {
		log.Warn("logger.file.rotate is not supported here; the file grows until rotated from outside (logrotate with copytruncate)", "path", c.File.Path)
	}
	return log, closeFile, nil
}

// replaceAttr renames and formats slog's built-in keys as Benthos's logger
// (logrus) does: its level names ("warning", not "WARN"), RFC 3339 seconds,
// the configured key names, and no trailing newline.
func (c Config) replaceAttr(groups []string, a slog.Attr) slog.Attr {
	if len(groups) > 0 {
		return a
	}
	switch a.Key {
	case slog.TimeKey:
		if a.Value.Kind() != slog.KindTime {
			return a
		}
		if !c.AddTimestamp {
			return slog.Attr{}
		}
		return slog.String(orDefault(c.TimestampName, slog.TimeKey), a.Value.Time().Format(time.RFC3339))
	case slog.LevelKey:
		level, ok := a.Value.Any().(slog.Level)
		if !ok {
			return a
		}
		return slog.String(orDefault(c.LevelName, slog.LevelKey), levelName(level))
	case slog.MessageKey:
		// Benthos's messages may end in a newline, which its own logger
		// trims.
		return slog.String(orDefault(c.MessageName, slog.MessageKey), strings.TrimSuffix(a.Value.String(), "\n"))
	}
	return a
}

// levelName is logrus's name of the level.
func levelName(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warning"
	}
	return "error"
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
