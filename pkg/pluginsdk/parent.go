package pluginsdk

import (
	"errors"
	"io"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

// parentCheckInterval is how often a plugin without qiflow's parent pipe
// checks that qiflow is alive.
const parentCheckInterval = 500 * time.Millisecond

// watchParent calls gone, once, when qiflow has exited, so that a plugin
// does not outlive a qiflow killed with SIGKILL. qiflow passes the read end
// of a pipe (pluginpb.ParentFDEnv) whose write end only it holds: EOF on it
// means qiflow is gone, with no polling, and it works whether or not
// qiflow is the plugin's parent (a wrapper script may be). Without the
// pipe, the plugin polls qiflow's PID (pluginpb.HostPIDEnv) with signal 0,
// or else waits for its parent at startup to change, as it does when the
// parent exits and init adopts the plugin.
func watchParent(every time.Duration, gone func(parent int)) {
	host, _ := strconv.Atoi(os.Getenv(pluginpb.HostPIDEnv))
	if fd, err := strconv.Atoi(os.Getenv(pluginpb.ParentFDEnv)); err == nil && fd > 2 {
		if pipe := os.NewFile(uintptr(fd), "qiflow-parent"); pipe != nil {
			go func() {
				_, _ = io.Copy(io.Discard, pipe)
				gone(host)
			}()
			return
		}
	}
	alive := func() bool { return !errors.Is(syscall.Kill(host, 0), syscall.ESRCH) }
	if host <= 0 {
		parent := os.Getppid()
		host = parent
		alive = func() bool { return os.Getppid() == parent }
	}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for alive() {
			<-t.C
		}
		gone(host)
	}()
}
