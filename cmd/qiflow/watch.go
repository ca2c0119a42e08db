package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/supervisor"
	"github.com/qicore/qiflow/plugins/mcp"
	"github.com/qicore/qiflow/plugins/prometheus"
)

// defaultHTTPAddress is Benthos's default HTTP server address.
const defaultHTTPAddress = "0.0.0.0:4195"

// httpAddressEnv sets the HTTP server address when no flag does, so that
// several containers' commands can run unchanged side by side.
const httpAddressEnv = "QIFLOW_HTTP_ADDRESS"

// watchUsage documents `run --watch` and `streams --watch`.
const watchUsage = `qiflow run --watch [flags] FILE
qiflow streams --watch [flags] DIR|FILE...

Runs the pipelines and swaps them when their config changes: a new config is
linted and built before the running stream is touched; the running stream is
drained (in-flight messages written, offsets committed) before the new one
starts; a new stream that does not connect within --reload-start-timeout is
replaced by the old config again. Edits are picked up from the file system
(saves by rename included) and from POST /reload. Every reload is reported in
the log, in qiflow_reloads_total{result} and at GET /reloads.

Flags:
  -c, --config FILE              the config file (run)
  --set PATH=VALUE               override a config field, e.g. --set output.timescale.pool_size=8
  --log.level LEVEL              error, warn, info, debug (default: the config's logger.level, else info)
  --http-address ADDR            the HTTP server (default: $QIFLOW_HTTP_ADDRESS, else the config's
                                 http.address, else 0.0.0.0:4195; "" disables)
  --reload-start-timeout DUR     how long a reloaded stream may take to connect (default 15s)
  --drain-timeout DUR            how long a stream may take to drain (default 30s)
  --watch-debounce DUR           quiet time after a change before reloading (default 200ms)
  --watch-poll DUR               also re-read the configs this often, for file systems without change events (default 0: off)
  --mcp-token-file FILE          serve the MCP server (docs/mcp.md) at /mcp to requests with this bearer token
                                 (default: $QIFLOW_MCP_TOKEN; neither: no /mcp)
  --mcp-allow-writes             enable the MCP tools that change things (schema_apply, reload)
`

// watchArgs reports whether args ask for the reload supervisor: `run` or
// `streams` with --watch.
func watchArgs(args []string) bool {
	if len(args) < 2 || (args[1] != "run" && args[1] != "streams") {
		return false
	}
	return slices.ContainsFunc(args[2:], func(a string) bool { return a == "--watch" || a == "-watch" })
}

// runWatch runs `qiflow run --watch` or `qiflow streams --watch` and returns
// the exit code.
func runWatch(args []string, stdout, stderr io.Writer) int {
	opts, level, err := parseWatchFlags(args[1] == "streams", args[2:])
	if errors.Is(err, errHelp) {
		_, _ = fmt.Fprint(stdout, watchUsage)
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "qiflow %s --watch: %v\n\n%s", args[1], err, watchUsage)
		return 1
	}
	opts.Logger = slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level}))
	opts.Registerer = prometheus.Registry()
	opts.Metrics = prometheus.Handler()

	sup, err := supervisor.New(opts)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "qiflow %s --watch: %v\n", args[1], err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = sup.Run(ctx)
	var halted *supervisor.HaltError
	switch {
	case errors.As(err, &halted):
		_, _ = fmt.Fprintf(stderr, "qiflow stopped: %v\n", halted.Err)
		return exitHalted
	case err != nil:
		_, _ = fmt.Fprintf(stderr, "qiflow %s --watch: %v\n", args[1], err)
		return 1
	}
	return 0
}

var errHelp = errors.New("help requested")

// parseWatchFlags parses the flags of `run --watch` and `streams --watch`,
// which may come before or after the files.
func parseWatchFlags(streams bool, args []string) (supervisor.Options, slog.Level, error) {
	opts := supervisor.Options{Streams: streams, Watch: true}
	var (
		levelName    string
		flagAddress  *string
		setAddress   *string
		mcpTokenFile string
		mcpWrites    bool
	)
	durations := map[string]*time.Duration{
		"--reload-start-timeout": &opts.StartTimeout,
		"--drain-timeout":        &opts.DrainTimeout,
		"--watch-debounce":       &opts.Debounce,
		"--watch-poll":           &opts.Poll,
	}
	for i := 0; i < len(args); i++ {
		name, value, inline := strings.Cut(args[i], "=")
		next := func() (string, error) {
			if inline {
				return value, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", name)
			}
			i++
			return args[i], nil
		}
		switch {
		case name == "--watch" || name == "-watch":
		case name == "--mcp-allow-writes":
			mcpWrites = true
		case name == "--mcp-token-file":
			v, err := next()
			if err != nil {
				return opts, 0, err
			}
			mcpTokenFile = v
		case name == "-h" || name == "--help":
			return opts, 0, errHelp
		case name == "-c" || name == "--config":
			v, err := next()
			if err != nil {
				return opts, 0, err
			}
			opts.Targets = append(opts.Targets, v)
		case name == "--set" || name == "-s":
			v, err := next()
			if err != nil {
				return opts, 0, err
			}
			if addr, ok := strings.CutPrefix(v, "http.address="); ok {
				setAddress = &addr
			}
			opts.Sets = append(opts.Sets, v)
		case name == "--log.level":
			v, err := next()
			if err != nil {
				return opts, 0, err
			}
			levelName = v
		case name == "--http-address":
			v, err := next()
			if err != nil {
				return opts, 0, err
			}
			flagAddress = &v
		case durations[name] != nil:
			v, err := next()
			if err != nil {
				return opts, 0, err
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				return opts, 0, fmt.Errorf("%s: %w", name, err)
			}
			*durations[name] = d
		case strings.HasPrefix(name, "-"):
			return opts, 0, fmt.Errorf("flag %s is not supported with --watch", name)
		default:
			opts.Targets = append(opts.Targets, args[i])
		}
	}
	if len(opts.Targets) == 0 {
		return opts, 0, errors.New("no config file given")
	}
	conf := fileSettings(opts.Targets[0], streams)
	env, fromEnv := os.LookupEnv(httpAddressEnv)
	switch {
	case flagAddress != nil:
		opts.HTTPAddress = *flagAddress
	case setAddress != nil:
		opts.HTTPAddress = *setAddress
	case fromEnv:
		opts.HTTPAddress = env
	default:
		opts.HTTPAddress = conf.address
	}
	if err := mcp.Mount(&opts, mcpTokenFile, mcpWrites, version); err != nil {
		return opts, 0, err
	}
	if levelName == "" {
		levelName = conf.level
	}
	level, err := parseLevel(levelName)
	return opts, level, err
}

// settings are what the supervisor takes from the run config itself.
type settings struct {
	address string
	level   string
}

// fileSettings reads http.address, http.enabled and logger.level from a run
// config. In streams mode, or when the file cannot be read (the supervisor
// reports that itself), it returns the defaults.
func fileSettings(file string, streams bool) settings {
	s := settings{address: defaultHTTPAddress, level: "info"}
	if streams {
		return s
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return s
	}
	var conf struct {
		HTTP struct {
			Enabled *bool  `yaml:"enabled"`
			Address string `yaml:"address"`
		} `yaml:"http"`
		Logger struct {
			Level string `yaml:"level"`
		} `yaml:"logger"`
	}
	if yaml.Unmarshal(raw, &conf) != nil {
		return s
	}
	if conf.HTTP.Address != "" && !strings.Contains(conf.HTTP.Address, "${") {
		s.address = conf.HTTP.Address
	}
	if conf.HTTP.Enabled != nil && !*conf.HTTP.Enabled {
		s.address = ""
	}
	if conf.Logger.Level != "" && !strings.Contains(conf.Logger.Level, "${") {
		s.level = conf.Logger.Level
	}
	return s
}

// parseLevel maps Benthos's log level names to slog's.
func parseLevel(name string) (slog.Level, error) {
	switch strings.ToLower(name) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug", "trace", "all":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error", "fatal", "none", "off":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("--log.level %q: want error, warn, info or debug", name)
}
