package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWatchArgs(t *testing.T) {
	assert.True(t, watchArgs([]string{"qiflow", "run", "--watch", "a.yaml"}))
	assert.True(t, watchArgs([]string{"qiflow", "streams", "a.yaml", "--watch"}))
	assert.False(t, watchArgs([]string{"qiflow", "run", "-w", "a.yaml"}), "Benthos's own watcher stays Benthos's")
	assert.False(t, watchArgs([]string{"qiflow", "lint", "--watch"}))
}

func TestWatchHTTPAddressPrecedence(t *testing.T) {
	dir := t.TempDir()
	withAddress := filepath.Join(dir, "with.yaml")
	require.NoError(t, os.WriteFile(withAddress, []byte("http:\n  address: 127.0.0.1:7000\nlogger:\n  level: DEBUG\ninput:\n  generate: {mapping: 'root = 1'}\n"), 0o644))
	disabled := filepath.Join(dir, "disabled.yaml")
	require.NoError(t, os.WriteFile(disabled, []byte("http:\n  enabled: false\ninput:\n  generate: {mapping: 'root = 1'}\n"), 0o644))
	plain := filepath.Join(dir, "plain.yaml")
	require.NoError(t, os.WriteFile(plain, []byte("input:\n  generate: {mapping: 'root = 1'}\n"), 0o644))

	cases := []struct {
		name    string
		env     string
		args    []string
		streams bool
		want    string
	}{
		{name: "default: loopback", args: []string{plain}, want: "127.0.0.1:4195"},
		{name: "the config's", args: []string{withAddress}, want: "127.0.0.1:7000"},
		{name: "the config disables it", args: []string{disabled}, want: ""},
		{name: "env beats the config", env: "127.0.0.1:7001", args: []string{withAddress}, want: "127.0.0.1:7001"},
		{name: "--set beats env", env: "127.0.0.1:7001", args: []string{withAddress, "--set", "http.address=127.0.0.1:7002"}, want: "127.0.0.1:7002"},
		{name: "the flag beats --set", args: []string{"--http-address", "127.0.0.1:7003", "--set", "http.address=127.0.0.1:7002", withAddress}, want: "127.0.0.1:7003"},
		{name: "streams ignore a file's address", args: []string{withAddress}, streams: true, want: "127.0.0.1:4195"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv(httpAddressEnv, c.env)
			}
			opts, _, err := parseWatchFlags(c.streams, c.args)
			require.NoError(t, err)
			assert.Equal(t, c.want, opts.HTTPAddress)
		})
	}
}

func TestWatchFlags(t *testing.T) {
	opts, logger, err := parseWatchFlags(false, []string{"-c", "a.yaml", "--reload-start-timeout=3s", "--drain-timeout", "1m",
		"--watch-debounce", "10ms", "--watch-poll", "5s", "--log.level", "debug", "--log.format", "json", "--set", "output.drop={}"})
	require.NoError(t, err)
	assert.Equal(t, []string{"a.yaml"}, opts.Targets)
	assert.Equal(t, 3*time.Second, opts.StartTimeout)
	assert.Equal(t, time.Minute, opts.DrainTimeout)
	assert.Equal(t, 10*time.Millisecond, opts.Debounce)
	assert.Equal(t, 5*time.Second, opts.Poll)
	assert.Equal(t, "debug", logger.Level)
	assert.Equal(t, "json", logger.Format)
	assert.Equal(t, []string{"output.drop={}"}, opts.Sets)

	for args, msg := range map[string][]string{
		"flag -r is not supported with --watch":         {"-r", "res.yaml", "a.yaml"},
		"no config file given":                          {"--drain-timeout", "1s"},
		"--drain-timeout needs a value":                 {"a.yaml", "--drain-timeout"},
		`--log.level: "loud" is not a log level`:        {"a.yaml", "--log.level", "loud"},
		`--log.format: "xml" is not a log format`:       {"a.yaml", "--log.format", "xml"},
		`--set logger.level: "loud" is not a log level`: {"a.yaml", "--set", "logger.level=loud"},
	} {
		_, _, err := parseWatchFlags(false, msg)
		assert.ErrorContains(t, err, args)
	}
}

func TestWatchLoggerPrecedence(t *testing.T) {
	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "a.yaml")
	require.NoError(t, os.WriteFile(jsonFile, []byte("logger:\n  level: ${QIFLOW_TEST_LEVEL:DEBUG}\n  format: json\ninput:\n  generate: {mapping: 'root = 1'}\n"), 0o644))
	plain := filepath.Join(dir, "b.yaml")
	require.NoError(t, os.WriteFile(plain, []byte("input:\n  generate: {mapping: 'root = 1'}\n"), 0o644))
	streamsDir := filepath.Join(dir, "streams")
	require.NoError(t, os.Mkdir(streamsDir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(streamsDir, "z.yaml"), []byte("logger: {format: logfmt}\ninput:\n  generate: {mapping: 'root = 1'}\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(streamsDir, "m.yaml"), []byte("logger: {format: json, level: WARN}\ninput:\n  generate: {mapping: 'root = 1'}\n"), 0o644))

	cases := []struct {
		name          string
		args          []string
		streams       bool
		level, format string
	}{
		{name: "Benthos's defaults", args: []string{plain}, level: "INFO", format: "logfmt"},
		{name: "the config's, ${VAR} resolved", args: []string{jsonFile}, level: "DEBUG", format: "json"},
		{name: "--set beats the config", args: []string{jsonFile, "--set", "logger.format=json", "--set", "logger.format=logfmt"}, level: "DEBUG", format: "logfmt"},
		{name: "the flags beat --set", args: []string{"--log.format", "json", "--log.level", "error", plain, "--set", "logger.format=logfmt"}, level: "error", format: "json"},
		{name: "streams: the first file named", args: []string{jsonFile, plain}, streams: true, level: "DEBUG", format: "json"},
		{name: "streams: a directory's first file by name", args: []string{streamsDir}, streams: true, level: "WARN", format: "json"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, logger, err := parseWatchFlags(c.streams, c.args)
			require.NoError(t, err)
			assert.Equal(t, c.level, logger.Level)
			assert.Equal(t, c.format, logger.Format)
			assert.Equal(t, map[string]string{"@service": "benthos"}, logger.StaticFields, "Benthos's default static fields")
		})
	}
}
