package logsetup

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultIsBenthosLoggerSpec(t *testing.T) {
	c := Default()
	assert.Equal(t, "INFO", c.Level)
	assert.Equal(t, FormatLogfmt, c.Format)
	assert.True(t, c.AddTimestamp)
	assert.Equal(t, []string{"level", "msg", "time"}, []string{c.LevelName, c.MessageName, c.TimestampName})
	assert.Equal(t, map[string]string{"@service": "benthos"}, c.StaticFields)
}

func TestFromPipelineReadsTheLoggerSection(t *testing.T) {
	lookup := func(k string) (string, bool) {
		if k == "LOG_FORMAT" {
			return "json", true
		}
		return "", false
	}
	c, err := FromPipeline("logger:\n  level: ${LOG_LEVEL:warn}\n  format: ${LOG_FORMAT}\n  add_timestamp: false\n  message_name: message\n  static_fields: {app: ingest}\ninput:\n  generate: {mapping: 'root = 1'}\n", lookup)
	require.NoError(t, err)
	assert.Equal(t, "warn", c.Level)
	assert.Equal(t, FormatJSON, c.Format)
	assert.False(t, c.AddTimestamp)
	assert.Equal(t, "message", c.MessageName)
	assert.Equal(t, "level", c.LevelName, "a field left out keeps its default")
	assert.Equal(t, map[string]string{"app": "ingest"}, c.StaticFields)

	_, err = FromPipeline("logger:\n  format: xml\n", nil)
	assert.ErrorContains(t, err, "not a valid option", "Benthos's lint of the section")
	_, err = FromPipeline("input: [\n", nil)
	assert.ErrorContains(t, err, "invalid YAML")
}

// logLine logs one warning with fields through c and returns what came out.
func logLine(t *testing.T, c Config) string {
	t.Helper()
	var buf bytes.Buffer
	log, closeLog, err := New(&buf, c)
	require.NoError(t, err)
	log.With("path", "root.input", "label", "").Warn("Input type generate is now active\n", "n", 1)
	require.NoError(t, closeLog())
	return buf.String()
}

func TestNewWritesWhatBenthosWrites(t *testing.T) {
	c := Default()
	c.Format = FormatJSON
	var entry map[string]any
	require.NoError(t, json.Unmarshal([]byte(logLine(t, c)), &entry))
	assert.Equal(t, "warning", entry["level"], "logrus's name")
	assert.Equal(t, "Input type generate is now active", entry["msg"], "the trailing newline trimmed")
	assert.Equal(t, "benthos", entry["@service"])
	assert.Equal(t, "root.input", entry["path"])
	assert.Contains(t, entry, "time")

	c.TimestampName, c.LevelName, c.MessageName = "ts", "severity", "message"
	entry = nil
	require.NoError(t, json.Unmarshal([]byte(logLine(t, c)), &entry))
	for _, k := range []string{"ts", "severity", "message"} {
		assert.Contains(t, entry, k)
	}

	c = Default()
	c.AddTimestamp = false
	line := logLine(t, c)
	assert.True(t, strings.HasPrefix(line, `level=warning msg="Input type generate is now active" @service=benthos path=root.input label=""`), line)
}

func TestNewHonoursTheLevel(t *testing.T) {
	for level, logs := range map[string]bool{"error": false, "WARN": true, "info": true, "TRACE": true, "OFF": false, "none": false} {
		c := Default()
		c.Level = level
		assert.Equal(t, logs, logLine(t, c) != "", level)
	}
	c := Default()
	c.Level = "loud"
	_, _, err := New(&bytes.Buffer{}, c)
	assert.ErrorContains(t, err, `logger.level: "loud" is not a log level`)
	c = Default()
	c.Format = "xml"
	_, _, err = New(&bytes.Buffer{}, c)
	assert.ErrorContains(t, err, `logger.format: "xml" is not a log format`)
}

func TestNewAppendsToTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qiflow.log")
	c := Default()
	c.File.Path = path
	var stdout bytes.Buffer
	log, closeLog, err := New(&stdout, c)
	require.NoError(t, err)
	log.Info("one")
	log.Info("two")
	require.NoError(t, closeLog())
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, 2, strings.Count(string(raw), "\n"))
	assert.Empty(t, stdout.String())
}

func TestParseLevelTakesBenthosNames(t *testing.T) {
	for name, want := range map[string]slog.Level{"": slog.LevelInfo, "INFO": slog.LevelInfo, "debug": slog.LevelDebug, "Warn": slog.LevelWarn, "FATAL": slog.LevelError, "all": slog.LevelDebug - 4} {
		got, err := ParseLevel(name)
		require.NoError(t, err, name)
		assert.Equal(t, want, got, name)
	}
}
