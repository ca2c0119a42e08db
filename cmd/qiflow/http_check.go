package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/qicore/qiflow/internal/supervisor"
)

// benthosValueFlags are the flags of Benthos's run and streams commands
// that take a value, so that the value is not taken for a config file.
var benthosValueFlags = map[string]bool{
	"--log.level": true, "--set": true, "-s": true, "--resources": true, "-r": true,
	"--env-file": true, "-e": true, "--templates": true, "-t": true,
	"--observability": true, "-o": true,
}

// plainHTTP prepares plain `qiflow run` and `qiflow streams` (without
// --watch, which the supervisor serves) for Benthos's HTTP server. It
// works the address out as --watch does (--http-address, else --set
// http.address, else $QIFLOW_HTTP_ADDRESS, else the config's http section,
// else 127.0.0.1:4195 rather than Benthos's 0.0.0.0:4195) and passes it to
// Benthos as a --set. It then listens on it once: Benthos would only log a
// taken port and run on without /ready or /metrics, so a taken one is a
// start error here too, a *supervisor.ListenError. Other commands' args
// are returned unchanged.
func plainHTTP(args []string) ([]string, error) {
	if len(args) < 2 || (args[1] != "run" && args[1] != "streams") {
		return args, nil
	}
	streams := args[1] == "streams"
	var (
		rest        = append([]string(nil), args[:2]...)
		flagAddress *string
		setAddress  *string
		setDisabled bool
		rootConfig  string
		file        string
	)
	for i := 2; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, inline := strings.Cut(a, "=")
		if name == "--http-address" || name == "-http-address" {
			if !inline {
				if i+1 >= len(args) {
					return nil, fmt.Errorf("%s needs a value", name)
				}
				i++
				value = args[i]
			}
			flagAddress = &value
			continue
		}
		if f := watchOnlyFlag(a); f != "" {
			return nil, fmt.Errorf("%s needs --watch (qiflow %s --watch --help lists its flags)", f, args[1])
		}
		rest = append(rest, a)
		if !strings.HasPrefix(a, "-") {
			if file == "" {
				file = a
			}
			continue
		}
		if !benthosValueFlags[name] {
			continue
		}
		if !inline {
			if i+1 >= len(args) {
				continue // Benthos reports it
			}
			i++
			value = args[i]
			rest = append(rest, value)
		}
		switch {
		case name == "--observability" || name == "-o":
			rootConfig = value
		case name == "--set" || name == "-s":
			if addr, ok := strings.CutPrefix(value, "http.address="); ok {
				setAddress = &addr
			}
			if enabled, ok := strings.CutPrefix(value, "http.enabled="); ok {
				setDisabled = enabled == "false"
			}
		}
	}
	if !streams {
		rootConfig = file
	}
	conf := settings{address: defaultHTTPAddress}
	if rootConfig != "" {
		conf = fileSettings([]string{rootConfig}, false)
	}
	env, fromEnv := os.LookupEnv(httpAddressEnv)
	address, inject := "", true
	switch {
	case flagAddress != nil:
		address = *flagAddress
	case setAddress != nil:
		address, inject = *setAddress, false
	case setDisabled:
		return rest, nil
	case fromEnv:
		address = env
	case conf.configured && strings.Contains(conf.written, "${"):
		return rest, nil // Benthos resolves it; nothing to check here
	case conf.configured:
		address, inject = conf.address, false
	default:
		address = defaultHTTPAddress
	}
	if inject {
		set := "http.address=" + address
		if address == "" {
			set = "http.enabled=false"
		}
		rest = append(rest[:2:2], append([]string{"--set", set}, rest[2:]...)...)
	}
	if address == "" {
		return rest, nil
	}
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, &supervisor.ListenError{Address: address, Err: err}
	}
	_ = ln.Close()
	return rest, nil
}

// reportListenError says that the HTTP server cannot listen, and how to
// choose another address or none: for `qiflow run`, `qiflow streams` and
// their --watch forms alike.
func reportListenError(w io.Writer, command string, err *supervisor.ListenError) {
	_, _ = fmt.Fprintf(w, "qiflow %s: %v\n%s", command, err, listenHint)
}
