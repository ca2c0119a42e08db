package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/logsetup"
	"github.com/qicore/qiflow/internal/supervisor"
	"github.com/qicore/qiflow/plugins/mcp"
	"github.com/qicore/qiflow/plugins/prometheus"
)

// defaultHTTPAddress is where the HTTP server listens unless told
// otherwise: Benthos's port on the loopback interface, so that outside a
// container only this machine reaches /reload. The image and compose set
// QIFLOW_HTTP_ADDRESS=0.0.0.0:4195, for probes and published ports.
const defaultHTTPAddress = "127.0.0.1:4195"

// httpAddressEnv sets the HTTP server address when no flag does, so that
// several containers' commands can run unchanged side by side.
const httpAddressEnv = "QIFLOW_HTTP_ADDRESS"

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
	opts, logConf, err := parseWatchFlags(args[1] == "streams", args[2:])
	if errors.Is(err, errHelp) {
		_, _ = fmt.Fprint(stdout, watchUsage)
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "qiflow %s --watch: %v\n\n%s", args[1], err, watchUsage)
		return 1
	}
	log, closeLog, err := logsetup.New(stdout, logConf)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "qiflow %s --watch: %v\n", args[1], err)
		return 1
	}
	defer func() { _ = closeLog() }()
	opts.Logger = log
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
	var (
		halted *supervisor.HaltError
		listen *supervisor.ListenError
	)
	switch {
	case errors.As(err, &listen):
		reportListenError(stderr, args[1]+" --watch", listen)
		return 1
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
func parseWatchFlags(streams bool, args []string) (supervisor.Options, logsetup.Config, error) {
	opts := supervisor.Options{Streams: streams, Watch: true}
	var (
		none         logsetup.Config
		levelName    string
		formatName   string
		setLevel     string
		setFormat    string
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
				return opts, none, err
			}
			mcpTokenFile = v
		case name == "-h" || name == "--help":
			return opts, none, errHelp
		case name == "-c" || name == "--config":
			v, err := next()
			if err != nil {
				return opts, none, err
			}
			opts.Targets = append(opts.Targets, v)
		case name == "--set" || name == "-s":
			v, err := next()
			if err != nil {
				return opts, none, err
			}
			if addr, ok := strings.CutPrefix(v, "http.address="); ok {
				setAddress = &addr
			}
			// --set logger.* reaches the process's logger too, below the
			// --log.* flags; the last --set of a field wins, as in Benthos.
			if level, ok := strings.CutPrefix(v, "logger.level="); ok {
				setLevel = level
			}
			if format, ok := strings.CutPrefix(v, "logger.format="); ok {
				setFormat = format
			}
			opts.Sets = append(opts.Sets, v)
		case name == "--log.level":
			v, err := next()
			if err != nil {
				return opts, none, err
			}
			levelName = v
		case name == "--log.format":
			v, err := next()
			if err != nil {
				return opts, none, err
			}
			formatName = v
		case name == "--http-address":
			v, err := next()
			if err != nil {
				return opts, none, err
			}
			flagAddress = &v
		case durations[name] != nil:
			v, err := next()
			if err != nil {
				return opts, none, err
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				return opts, none, fmt.Errorf("%s: %w", name, err)
			}
			*durations[name] = d
		case strings.HasPrefix(name, "-"):
			return opts, none, fmt.Errorf("flag %s is not supported with --watch", name)
		default:
			opts.Targets = append(opts.Targets, args[i])
		}
	}
	if len(opts.Targets) == 0 {
		return opts, none, errors.New("no config file given")
	}
	conf := fileSettings(opts.Targets, streams)
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
		return opts, none, err
	}
	for _, o := range []struct {
		flag, value string
		check       func(string) error
		into        *string
	}{
		{"--set logger.level", setLevel, checkLevel, &conf.logger.Level},
		{"--set logger.format", setFormat, logsetup.CheckFormat, &conf.logger.Format},
		{"--log.level", levelName, checkLevel, &conf.logger.Level},
		{"--log.format", formatName, logsetup.CheckFormat, &conf.logger.Format},
	} {
		if o.value == "" {
			continue
		}
		if err := o.check(o.value); err != nil {
			return opts, none, fmt.Errorf("%s: %w", o.flag, err)
		}
		*o.into = o.value
	}
	return opts, conf.logger, nil
}

func checkLevel(name string) error {
	_, err := logsetup.ParseLevel(name)
	return err
}

// listenHint follows a ListenError: how to choose another address, or none.
const listenHint = `Choose another address with --http-address ADDR (or $QIFLOW_HTTP_ADDRESS, or http.address
in a run config), or run without the HTTP server (no /ready, /metrics or POST /reload)
with --http-address "".
`

// settings are what the supervisor takes from the configs themselves.
type settings struct {
	address string
	logger  logsetup.Config
	// configured: the file sets http.address, or http.enabled: false;
	// written is its http.address as written, ${VAR} and all.
	configured bool
	written    string
}

// fileSettings reads http.address and http.enabled from a run config, and
// the logger section from the first config file (supervisor.FirstConfig)
// in both modes: a process has one logger, and streams share one server
// whose address no single stream's file decides. What cannot be read
// leaves the defaults; the supervisor reports the file's problem itself.
func fileSettings(targets []string, streams bool) settings {
	s := settings{address: defaultHTTPAddress, logger: logsetup.Default()}
	raw, err := os.ReadFile(supervisor.FirstConfig(targets))
	if err != nil {
		return s
	}
	if logger, err := logsetup.FromPipeline(string(raw), nil); err == nil {
		s.logger = logger
	}
	if streams {
		return s
	}
	var conf struct {
		HTTP struct {
			Enabled *bool  `yaml:"enabled"`
			Address string `yaml:"address"`
		} `yaml:"http"`
	}
	if yaml.Unmarshal(raw, &conf) != nil {
		return s
	}
	if conf.HTTP.Address != "" {
		s.written = conf.HTTP.Address
		s.configured = true
	}
	if conf.HTTP.Address != "" && !strings.Contains(conf.HTTP.Address, "${") {
		s.address = conf.HTTP.Address
	}
	if conf.HTTP.Enabled != nil && !*conf.HTTP.Enabled {
		s.address = ""
		s.configured = true
	}
	return s
}
