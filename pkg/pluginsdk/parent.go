package pluginsdk

import (
	"os"
	"strconv"
	"time"

	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

// parentCheckInterval is how often a plugin checks that qiflow is alive.
const parentCheckInterval = 500 * time.Millisecond

// watchParent calls gone, once, when the process that started this one has
// exited. An orphan is adopted by init or a subreaper, so its parent
// process ID changes; that works on every Unix, unlike Linux's
// PR_SET_PDEATHSIG, which fires when the parent's thread that forked exits
// rather than the parent. The expected parent is qiflow's PID from
// pluginpb.HostPIDEnv when set, so that a plugin whose qiflow died before
// this check started exits too; otherwise it is the parent at startup.
func watchParent(every time.Duration, gone func(parent int)) {
	parent := os.Getppid()
	if pid, err := strconv.Atoi(os.Getenv(pluginpb.HostPIDEnv)); err == nil && pid > 0 {
		parent = pid
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for os.Getppid() == parent {
			<-t.C
		}
		gone(parent)
	}()
}
