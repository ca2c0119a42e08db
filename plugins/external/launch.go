package external

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

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

// pluginEnv is the environment a plugin runs with: qiflow's, without
// qiflow's own credentials. A plugin that needs one gets it explicitly,
// through its config, e.g. config: { dsn: "${DATABASE_URL}" }.
func pluginEnv(environ []string) []string {
	env := make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !isCredential(name) {
			env = append(env, kv)
		}
	}
	return env
}

// isCredential reports whether an environment variable holds one of
// qiflow's credentials: DESIGN.md's DATABASE_URL and REDPANDA_PASSWORD, and
// the profile's QIFLOW_ variables for passwords and the database URL.
func isCredential(name string) bool {
	switch name {
	case "DATABASE_URL", "REDPANDA_PASSWORD":
		return true
	}
	upper := strings.ToUpper(name)
	return strings.HasPrefix(upper, "QIFLOW_") &&
		(strings.Contains(upper, "PASSWORD") || strings.Contains(upper, "SECRET") || strings.Contains(upper, "DATABASE_URL"))
}

// instance is one running plugin process.
type instance struct {
	client *plugin.Client
	rpc    pluginpb.ProcessorClient
	pid    int
}

// exited reports whether the process has ended.
func (i *instance) exited() bool { return i.client.Exited() }

// kill ends a process that crashed, hangs or failed its health check at
// once, with SIGKILL: asking a hung plugin to stop would only add go-plugin's
// two-second grace period. It then lets go-plugin clean up its side. A
// process go-plugin has seen exit is not signalled, since its PID may have
// been reused.
func (i *instance) kill() {
	if i.pid > 0 && !i.client.Exited() {
		if p, err := os.FindProcess(i.pid); err == nil {
			_ = p.Kill()
		}
	}
	i.client.Kill()
}

// stop ends a healthy process gracefully: go-plugin asks it to shut down,
// which lets the SDK call the plugin's Close, and kills it if it has not
// exited after two seconds.
func (i *instance) stop() { i.client.Kill() }

// launch starts one plugin process, completes the handshake and hands the
// plugin its configuration.
func launch(ctx context.Context, c config, log *service.Logger) (*instance, error) {
	cmd := exec.Command(c.path)
	cmd.Env = append(pluginEnv(os.Environ()), pluginpb.HostPIDEnv+"="+strconv.Itoa(os.Getpid()))
	output := newPluginOutput(log)
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: pluginpb.Handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			pluginpb.ProtocolVersion: {pluginpb.PluginName: &pluginpb.GRPCPlugin{}},
		},
		Cmd:              cmd,
		SkipHostEnv:      true, // cmd.Env has it already
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
	inst, err := handshake(ctx, client, c)
	if err != nil {
		client.Kill()
		return nil, err
	}
	return inst, nil
}

func handshake(ctx context.Context, client *plugin.Client, c config) (*instance, error) {
	conn, err := client.Client()
	if err != nil {
		return nil, startError(c, err)
	}
	raw, err := conn.Dispense(pluginpb.PluginName)
	if err != nil {
		return nil, fmt.Errorf("plugin %s (%s): %w", c.name, c.path, err)
	}
	inst := &instance{client: client, rpc: raw.(pluginpb.ProcessorClient)}
	if rc := client.ReattachConfig(); rc != nil {
		inst.pid = rc.Pid
	}
	resp, err := inst.rpc.Configure(ctx, &pluginpb.ConfigureRequest{ConfigJson: c.configJSON})
	if err != nil {
		return nil, fmt.Errorf("plugin %s (pid %d): configure: %w", c.name, inst.pid, err)
	}
	if resp.Error != "" {
		return nil, result.New(result.System, "plugin_config",
			fmt.Sprintf("plugin %s rejected its %s: %s", c.name, exFieldConfig, resp.Error))
	}
	return inst, nil
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
