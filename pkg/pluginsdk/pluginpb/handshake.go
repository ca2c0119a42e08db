package pluginpb

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// ProtocolVersion is the version of the plugin protocol this package
// speaks: the handshake, the Processor service and its messages. go-plugin
// exchanges it when qiflow starts a plugin, and qiflow refuses a plugin that
// speaks another version instead of misreading it.
const ProtocolVersion = 1

// PluginName is the name under which a plugin serves the Processor service
// in go-plugin's plugin set.
const PluginName = "processor"

// HostPIDEnv names the environment variable in which qiflow passes its
// process ID to a plugin, so that the plugin can tell when qiflow is gone
// even if qiflow died before the plugin started watching.
const HostPIDEnv = "QIFLOW_PLUGIN_HOST_PID"

// MaxMessageBytes is the largest gRPC message either side accepts. gRPC's
// default of 4 MiB would fail large batches; a batch is in memory on both
// sides anyway, so the limit only guards against nonsense.
const MaxMessageBytes = 1 << 30

// Handshake is the go-plugin handshake shared by qiflow and its plugins.
// The magic cookie only keeps a plugin from being started by hand, or a
// non-plugin binary from being mistaken for one; it is not a secret.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "QIFLOW_PLUGIN_MAGIC_COOKIE",
	MagicCookieValue: "a8c3f2b1-qiflow-external-processor",
}

// GRPCPlugin connects the Processor service to go-plugin. A plugin sets
// Impl; qiflow leaves it nil and gets a ProcessorClient from GRPCClient.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	// Impl implements the service in the plugin process.
	Impl ProcessorServer
}

// GRPCServer registers the Processor service on the plugin's gRPC server.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	RegisterProcessorServer(s, p.Impl)
	return nil
}

// GRPCClient returns a ProcessorClient on qiflow's connection to the
// plugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, conn *grpc.ClientConn) (any, error) {
	return NewProcessorClient(conn), nil
}

// ParentFDEnv names the environment variable in which qiflow passes a
// plugin the number of a file descriptor: the read end of a pipe whose
// write end only qiflow holds. The plugin reads EOF from it when qiflow
// closes it or dies, even of SIGKILL, and even when the plugin runs under
// a wrapper script rather than as qiflow's child.
const ParentFDEnv = "QIFLOW_PLUGIN_PARENT_FD"
