package external

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"github.com/redpanda-data/benthos/v4/public/service"
	"google.golang.org/grpc"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

// Plugin discovery.
const (
	// EnvPluginDir names the directory where plugins are looked up by name.
	EnvPluginDir = "QIFLOW_PLUGIN_DIR"
	// DefaultPluginDir is the plugin directory when EnvPluginDir is unset.
	DefaultPluginDir = "./plugins.d"
	// PluginPrefix starts the file name of every plugin found by name.
	PluginPrefix = "qiflow-plugin-"
)

// resolvePlugin returns the absolute path of the plugin's executable, and
// the plugin's name for logs and metrics. A value with a path separator is
// a path; anything else is a name, looked up in the plugin directory.
func resolvePlugin(value string) (path, name string, err error) {
	if value == "" {
		return "", "", fmt.Errorf("%s: empty; give a plugin name or a path", exFieldPlugin)
	}
	where := ""
	if strings.ContainsRune(value, '/') || strings.ContainsRune(value, filepath.Separator) {
		path = value
		name = strings.TrimPrefix(filepath.Base(value), PluginPrefix)
	} else {
		dir := os.Getenv(EnvPluginDir)
		where = fmt.Sprintf(" (plugins are looked up by name as %s<name> in %s=%q)", PluginPrefix, EnvPluginDir, dir)
		if dir == "" {
			dir = DefaultPluginDir
			where = fmt.Sprintf(" (plugins are looked up by name as %s<name> in %s; set %s to look elsewhere)", PluginPrefix, DefaultPluginDir, EnvPluginDir)
		}
		path = filepath.Join(dir, PluginPrefix+value)
		name = value
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", "", fmt.Errorf("plugin %q not found: no file %s%s; build it there (`make plugins` builds the examples) or give %s a path", value, path, where, exFieldPlugin)
	case err != nil:
		return "", "", fmt.Errorf("plugin %q: %w", value, err)
	case info.IsDir():
		return "", "", fmt.Errorf("plugin %q: %s is a directory, not an executable", value, path)
	case info.Mode().Perm()&0o111 == 0:
		return "", "", fmt.Errorf("plugin %q: %s is not executable (mode %v); chmod +x it", value, path, info.Mode().Perm())
	}
	return path, name, nil
}

// pluginEnv is the environment a plugin runs with: an allowlist of
// qiflow's variables that programs need to run (PATH, HOME, locale, time
// zone, CA certificates), never qiflow's credentials, plus extra, the
// processor's env field. go-plugin adds its own variables, and launch
// qiflow's QIFLOW_PLUGIN_ ones. A plugin that needs a credential gets it
// explicitly, e.g. env: { ENRICHER_TOKEN: "${ENRICHER_TOKEN}" }.
func pluginEnv(environ []string, extra map[string]string) []string {
	env := make([]string, 0, len(environ)+len(extra))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, overridden := extra[name]; !overridden && inheritable(name) {
			env = append(env, kv)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		env = append(env, name+"="+extra[name])
	}
	return env
}

// inheritable reports whether a plugin inherits qiflow's environment
// variable name.
func inheritable(name string) bool {
	switch name {
	case "PATH", "HOME", "TMPDIR", "TZ", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR":
		return true
	}
	return strings.HasPrefix(name, "LC_")
}

// cleanupTimeout bounds how long qiflow waits for go-plugin to clean up
// after a process it killed: go-plugin waits until the plugin's standard
// output and error close, which a child that escaped the process group can
// hold open for ever.
const cleanupTimeout = 5 * time.Second

// stopGrace is how long a healthy plugin gets to exit after qiflow asked it
// to, before its process group is killed; go-plugin itself kills the
// process after two seconds.
const stopGrace = 3 * time.Second

// instance is one running plugin process, the leader of its own process
// group.
type instance struct {
	client *plugin.Client
	rpc    pluginpb.ProcessorClient
	pid    int
	log    *service.Logger
	output *pluginOutput
	// parent is qiflow's end of the pipe whose other end the plugin holds:
	// the plugin sees EOF when qiflow closes it or dies.
	parent *os.File

	answered atomic.Int64 // batches the process answered

	cleanupOnce sync.Once
	cleaned     chan struct{} // closed once go-plugin has cleaned up
}

// exited reports whether the process has ended.
func (i *instance) exited() bool { return i.client.Exited() }

// kill ends a process that crashed, hangs or failed its health check at
// once: SIGKILL to its process group, so that children it left holding its
// output die too, and go-plugin's cleanup in the background, so that the
// caller never waits for it.
func (i *instance) kill() {
	i.killGroup()
	i.cleanup()
}

// killGroup sends SIGKILL to the plugin's process group, unless go-plugin
// has reaped the process: then the group's ID may have been reused.
func (i *instance) killGroup() {
	select {
	case <-i.cleaned:
		return
	default:
	}
	if i.pid > 0 {
		_ = syscall.Kill(-i.pid, syscall.SIGKILL)
	}
}

// cleanup starts go-plugin's Kill, once, in the background: it closes the
// connection, asks the plugin to exit, kills the process after two seconds,
// and waits for its output to close. Then qiflow logs the plugin's last
// partial lines and closes its end of the parent pipe.
func (i *instance) cleanup() {
	i.cleanupOnce.Do(func() {
		go func() {
			i.client.Kill()
			i.output.flush()
			_ = i.parent.Close()
			close(i.cleaned)
		}()
	})
}

// wait waits for go-plugin's cleanup for at most d, and logs it when it
// does not finish.
func (i *instance) wait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-i.cleaned:
	case <-t.C:
		i.log.Warnf("Plugin process %d: go-plugin did not clean up within %v; a process outside the plugin's process group may hold its output", i.pid, d)
	}
}

// stop ends a healthy process gracefully: go-plugin asks it to shut down,
// which lets the SDK call the plugin's Close. A process still running after
// stopGrace or when ctx ends is killed with its process group, and so is
// whatever the plugin left behind.
func (i *instance) stop(ctx context.Context) {
	i.cleanup()
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-i.cleaned:
	case <-t.C:
	case <-ctx.Done():
	}
	i.killGroup()
	i.wait(cleanupTimeout)
}

// launch starts one plugin process in its own process group, completes the
// handshake and hands the plugin its configuration.
func launch(ctx context.Context, c config, log *service.Logger) (*instance, error) {
	pluginEnd, qiflowEnd, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start plugin %s: parent pipe: %w", c.name, err)
	}
	cmd := exec.Command(c.path)
	cmd.Env = append(pluginEnv(os.Environ(), c.env),
		pluginpb.HostPIDEnv+"="+strconv.Itoa(os.Getpid()),
		pluginpb.ParentFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{pluginEnd} // fd 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	output := newPluginOutput(log)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: pluginpb.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			pluginpb.ProtocolVersion: {pluginpb.PluginName: &pluginpb.GRPCPlugin{}},
		},
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env has what the plugin gets
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		StartTimeout:     c.startTimeout,
		Logger:           newHclogAdapter(log),
		Stderr:           output.writer(),
		SyncStderr:       output.writer(),
		SyncStdout:       output.writer(),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(pluginpb.MaxMessageBytes),
			grpc.MaxCallSendMsgSize(pluginpb.MaxMessageBytes),
		)},
	})
	inst := &instance{client: client, log: log, output: output, parent: qiflowEnd, cleaned: make(chan struct{})}
	err = handshake(ctx, inst, cmd, c)
	_ = pluginEnd.Close() // the plugin has its copy once it started
	if err != nil {
		inst.kill()
		inst.wait(cleanupTimeout)
		return nil, err
	}
	return inst, nil
}

// handshake connects to a started plugin and configures it.
func handshake(ctx context.Context, inst *instance, cmd *exec.Cmd, c config) error {
	conn, err := inst.client.Client()
	if cmd.Process != nil { // Client has started it, even if it then failed
		inst.pid = cmd.Process.Pid
	}
	if err != nil {
		return startError(c, err)
	}
	raw, err := conn.Dispense(pluginpb.PluginName)
	if err != nil {
		return fmt.Errorf("plugin %s (%s): %w", c.name, c.path, err)
	}
	inst.rpc = raw.(pluginpb.ProcessorClient)
	resp, err := inst.rpc.Configure(ctx, &pluginpb.ConfigureRequest{ConfigJson: c.configJSON})
	if err != nil {
		return fmt.Errorf("plugin %s (pid %d): configure: %w", c.name, inst.pid, err)
	}
	if resp.Error != "" {
		return result.New(result.System, "plugin_config",
			fmt.Sprintf("plugin %s rejected its %s: %s", c.name, exFieldConfig, resp.Error))
	}
	return nil
}

// pluginVersion finds the protocol version a plugin announced in
// go-plugin's version mismatch error, which carries it only in its text
// ("incompatible API version with plugin. Plugin version: 2, Client
// versions: [1]"); go-plugin v1.8.0 has no typed error for it.
var pluginVersion = regexp.MustCompile(`incompatible API version with plugin\. Plugin version: (\d+)`)

// startError explains why a plugin process did not start.
func startError(c config, err error) error {
	if m := pluginVersion.FindStringSubmatch(err.Error()); m != nil {
		v, _ := strconv.Atoi(m[1])
		advice := "rebuild the plugin against github.com/qicore/qiflow/pkg/pluginsdk of this qiflow release"
		if v > pluginpb.ProtocolVersion {
			advice = "upgrade qiflow to a release that speaks it, or " + advice
		}
		return result.New(result.System, "plugin_version", fmt.Sprintf(
			"plugin %s (%s) speaks qiflow plugin protocol version %d, but this qiflow speaks version %d: %s",
			c.name, c.path, v, pluginpb.ProtocolVersion, advice))
	}
	return fmt.Errorf("start plugin %s (%s): %w; a plugin must be built with pluginsdk.Serve, and its own output is in the log above (field plugin=%s)",
		c.name, c.path, err, c.name)
}
