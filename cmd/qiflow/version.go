package main

import (
	"fmt"
	"runtime/debug"
)

// benthosModule is the module whose version `qiflow --version` names next
// to qiflow's own.
const benthosModule = "github.com/redpanda-data/benthos/v4"

// versionString is what `qiflow --version` prints after "Version:".
func versionString() string {
	return fmt.Sprintf("%s (commit %s), Benthos %s", version, commit, benthosVersion())
}

// benthosVersion is the version of Benthos built into this binary, from
// its build information ("unknown" without it; a replaced module gives
// its replacement's version).
func benthosVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path != benthosModule {
			continue
		}
		if dep.Replace != nil && dep.Replace.Version != "" {
			return dep.Replace.Version
		}
		return dep.Version
	}
	return "unknown"
}
