// Command noop is the smallest qiflow plugin: it passes every message on
// unchanged. It measures what the plugin round trip costs (bench/) and is a
// template for new plugins.
//
// Build it with `make plugins`, which installs it as
// plugins.d/qiflow-plugin-noop, and use it with:
//
//	pipeline:
//	  processors:
//	    - external:
//	        plugin: noop
package main

import (
	"context"

	"github.com/qicore/qiflow/pkg/pluginsdk"
)

// noop implements pluginsdk.Processor and nothing else.
type noop struct{}

// ProcessBatch leaves every message as it is.
func (noop) ProcessBatch(context.Context, []*pluginsdk.Message) error { return nil }

func main() { pluginsdk.Serve(noop{}) }
