package supervisor

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher signals when the configs may have changed. It watches directories,
// not files: a save by rename (`sed -i`, `mv tmp file`, most editors, a
// Kubernetes ConfigMap swapping its ..data link) replaces the file's inode,
// and a watch on the old inode would go deaf after the first such save. Any
// event in a watched directory counts; the supervisor compares contents, so
// unrelated files cost one read.
type watcher struct {
	fs      *fsnotify.Watcher
	changes chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

func newWatcher(targets []string, debounce, poll time.Duration, log *slog.Logger) (*watcher, error) {
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	dirs := map[string]bool{}
	for _, t := range targets {
		dir := filepath.Dir(t)
		if st, err := os.Stat(t); err == nil && st.IsDir() {
			dir = t
		}
		if dirs[dir] {
			continue
		}
		if err := fsw.Add(dir); err != nil {
			_ = fsw.Close()
			return nil, fmt.Errorf("watch %s: %w", dir, err)
		}
		dirs[dir] = true
	}
	w := &watcher{fs: fsw, changes: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go w.loop(debounce, poll, log)
	return w, nil
}

// maxDelay bounds how long a stream of events (a log file written next to
// the config, say) can hold a reload back.
const maxDelay = time.Second

// loop turns bursts of events into one signal once the directory has been
// quiet for debounce, or maxDelay after the first event of the burst, and
// signals every poll interval as well.
func (w *watcher) loop(debounce, poll time.Duration, log *slog.Logger) {
	defer close(w.done)
	quiet := time.NewTimer(debounce)
	quiet.Stop()
	var burst time.Time // the first event since the last signal
	wait := func() {
		if burst.IsZero() {
			burst = time.Now()
		}
		quiet.Reset(min(debounce, time.Until(burst.Add(max(maxDelay, debounce)))))
	}
	var pollC <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		pollC = t.C
	}
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				return
			}
			log.Debug("Config directory changed", "event", ev.String())
			wait()
		case err, ok := <-w.fs.Errors:
			if !ok {
				return
			}
			// An overflowed queue lost events: reload to be sure.
			log.Warn("Config watch error; checking every config", "error", err.Error())
			wait()
		case <-quiet.C:
			burst = time.Time{}
			w.signal()
		case <-pollC:
			w.signal()
		}
	}
}

func (w *watcher) signal() {
	select {
	case w.changes <- struct{}{}:
	default: // one pending signal covers every change so far
	}
}

func (w *watcher) close() {
	close(w.stop)
	_ = w.fs.Close()
	<-w.done
}
