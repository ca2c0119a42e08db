// Command otherversion is a plugin that speaks another version of qiflow's
// plugin protocol than this tree's SDK, as a plugin built against an older
// or newer SDK would: the version comes from TESTPLUGIN_PROTOCOL_VERSION.
package main

import (
	"os"
	"strconv"

	"github.com/hashicorp/go-plugin"

	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

func main() {
	version, err := strconv.Atoi(os.Getenv("TESTPLUGIN_PROTOCOL_VERSION"))
	if err != nil {
		version = pluginpb.ProtocolVersion + 1
	}
	handshake := pluginpb.Handshake
	handshake.ProtocolVersion = uint(version)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: handshake,
		VersionedPlugins: map[int]plugin.PluginSet{
			version: {pluginpb.PluginName: &pluginpb.GRPCPlugin{Impl: &pluginpb.UnimplementedProcessorServer{}}},
		},
		GRPCServer: plugin.DefaultGRPCServer,
	})
}
