package external

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

// supervisor keeps one plugin process running for a processor: it starts
// it on the first batch, sends it batches, checks its health, and kills and
// restarts it when it crashes, hangs or fails its check, within the restart
// budget.
type supervisor struct {
	conf    config
	log     *service.Logger
	metrics metrics
	launch  func(context.Context) (*instance, error)

	// startMu serialises (re)starts, so that callers who find the plugin
	// dead at the same time start one process between them.
	startMu sync.Mutex
	// isolating is held for writing by a batch whose call was lost, for
	// its further calls, and for reading by every first call: a process
	// lost while isolating runs a suspect batch alone was lost to it.
	isolating sync.RWMutex

	mu       sync.Mutex
	started  bool        // the first process has been started
	current  *instance   // the running process, nil while there is none
	restarts []time.Time // restarts within the window, oldest first
	// exhaustedAt is when the restart budget ran out, zero while it has
	// not: the plugin counts as failed.
	exhaustedAt time.Time
	lastErr     error // why the last process ended, or failed to start
	closed      bool

	stop   chan struct{} // closed by close: ends calls, waits and the health loop
	health sync.WaitGroup
}

// newSupervisor returns a supervisor that starts the plugin, and its health
// loop, on the first batch.
func newSupervisor(c config, log *service.Logger, m metrics) *supervisor {
	log = log.With("plugin", c.name)
	s := &supervisor{conf: c, log: log, metrics: m, stop: make(chan struct{})}
	s.launch = func(ctx context.Context) (*instance, error) { return launch(ctx, c, log) }
	return s
}

// validate starts a plugin process, configures it and stops it again, so
// that a missing or incompatible plugin, or a config it rejects, is an
// error when the pipeline is built, without a process that outlives a
// pipeline whose construction fails later.
func (s *supervisor) validate() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.conf.startTimeout)
	defer cancel()
	inst, err := s.launch(ctx)
	if err != nil {
		return err
	}
	inst.stop(ctx)
	return nil
}

// call sends one batch to the plugin once, restarting it first if it is
// not running. A process lost during the call (it crashed, broke its
// connection or did not answer within timeout) is killed and the error is a
// *lostCall; the next call restarts the plugin. A gRPC status the plugin
// answered with that is no transport failure is a transient EXTERNAL
// plugin_contract error, and the process stays. Restarts are charged to l,
// nil for a batch's first call. Other errors are *result.Error, transient.
func (s *supervisor) call(ctx context.Context, req *pluginpb.ProcessBatchRequest, l *ledger) (*pluginpb.ProcessBatchResponse, error) {
	inst, err := s.acquire(ctx, l)
	if err != nil {
		return nil, err
	}
	callCtx, cancel := context.WithTimeout(ctx, s.conf.timeout)
	go func() { // close ends the call
		select {
		case <-s.stop:
			cancel()
		case <-callCtx.Done():
		}
	}()
	answeredBefore := inst.answered.Load() > 0
	started := time.Now()
	resp, err := inst.rpc.ProcessBatch(callCtx, req)
	s.metrics.latency.Timing(time.Since(started).Nanoseconds(), s.conf.name)
	s.metrics.calls.Incr(1, s.conf.name)
	hung := errors.Is(callCtx.Err(), context.DeadlineExceeded)
	cancel()
	if err == nil {
		inst.answered.Add(1)
		return resp, nil
	}
	if ctx.Err() != nil {
		return nil, result.Wrap(result.System, "canceled", ctx.Err(),
			fmt.Sprintf("plugin %s: the pipeline stopped while the batch was in flight", s.conf.name)).AsTransient()
	}
	if s.isClosed() {
		return nil, s.closedError()
	}
	if !hung && contractCodes[status.Code(err)] {
		s.log.Errorf("Plugin %s refused a batch of %d messages, which the input retries: %v", s.conf.name, len(req.Payloads), err)
		return nil, result.Wrap(result.External, "plugin_contract", err,
			fmt.Sprintf("plugin %s refused the batch", s.conf.name)).AsTransient()
	}
	s.metrics.callErrors.Incr(1, s.conf.name)
	lost := &lostCall{answeredBefore: answeredBefore,
		reason: fmt.Errorf("crashed or broke its connection during a batch: %w", err)}
	if hung || status.Code(err) == codes.DeadlineExceeded {
		lost.hung = true
		lost.reason = fmt.Errorf("did not answer a batch within the timeout of %v", s.conf.timeout)
	}
	s.retire(inst, lost.reason)
	return nil, lost
}

// contractCodes are the gRPC statuses that come from the plugin's answer or
// from gRPC refusing the batch (ResourceExhausted: a message too large),
// not from a lost process: restarting the plugin would not change them.
var contractCodes = map[codes.Code]bool{
	codes.ResourceExhausted:  true,
	codes.InvalidArgument:    true,
	codes.Unimplemented:      true,
	codes.FailedPrecondition: true,
	codes.OutOfRange:         true,
}

// lostCall is the error of a call whose process crashed or hung.
type lostCall struct {
	hung bool
	// answeredBefore: the process had answered other batches, so it
	// worked until this call.
	answeredBefore bool
	reason         error
}

func (e *lostCall) Error() string { return e.reason.Error() }

// ledger records the restarts done for one batch after its first call was
// lost. While exempt, and for at most limit restarts, they do not count
// against the restart budget: they isolate a poison message in a plugin
// that works.
type ledger struct {
	exempt  bool
	limit   int
	done    int         // restarts done, exempt or not
	counted []time.Time // the restarts that count against the budget
}

// refund takes restarts that turned out to be a poison message's doing
// out of the budget.
func (s *supervisor) refund(times []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.restarts[:0]
	for _, t := range s.restarts {
		if !slices.ContainsFunc(times, t.Equal) {
			kept = append(kept, t)
		}
	}
	s.restarts = kept
}

// acquire returns the running process, restarting the plugin if there is
// none; l, if not nil, is charged with the restart.
func (s *supervisor) acquire(ctx context.Context, l *ledger) (*instance, error) {
	s.mu.Lock()
	inst, closed := s.current, s.closed
	s.mu.Unlock()
	if closed {
		return nil, s.closedError()
	}
	if inst != nil {
		if !inst.exited() {
			return inst, nil
		}
		s.retire(inst, errors.New("exited"))
	}
	return s.restart(ctx, l)
}

// restart starts a new process after the backoff, unless restarts have
// used up the window's budget. Then the plugin counts as failed: restart
// waits up to backoff.max_interval for the budget to free up, so that the
// pipeline does not spin, and returns a transient SYSTEM error. Once the
// oldest restart leaves the window (with max_restarts 0: once a window has
// passed since the failure), the plugin gets another start. A restart
// that l exempts skips the budget, though not a failure already declared,
// and waits only initial_interval.
func (s *supervisor) restart(ctx context.Context, l *ledger) (*instance, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, s.closedError()
		}
		if s.current != nil {
			inst := s.current // another caller restarted it meanwhile
			s.mu.Unlock()
			return inst, nil
		}
		if !s.started {
			s.started = true
			s.mu.Unlock()
			inst, err := s.start(ctx)
			if err == nil {
				return inst, nil
			}
			s.log.Warnf("Start of plugin %s failed: %v", s.conf.name, err)
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			continue
		}
		now := time.Now()
		s.pruneLocked(now)
		n, lastErr := len(s.restarts), s.lastErr
		exempt := l != nil && l.exempt && l.done < l.limit && s.exhaustedAt.IsZero()
		var retryAt time.Time
		if !exempt && n >= s.conf.maxRestarts {
			first := s.exhaustedAt.IsZero()
			if first {
				s.exhaustedAt = now
			}
			retryAt = s.retryAtLocked()
			if first {
				s.metrics.failures.Incr(1, s.conf.name)
				s.log.Errorf("Plugin %s failed: it needed more than %d restarts within %v (last: %v). Its batches are returned with a transient error for the input to retry; qiflow starts the plugin again at %s.",
					s.conf.name, s.conf.maxRestarts, s.conf.restartWindow, lastErr, retryAt.Format(time.RFC3339))
			}
		}
		retrying := !s.exhaustedAt.IsZero()
		s.mu.Unlock()

		if now.Before(retryAt) {
			if err := s.sleep(ctx, min(s.conf.backoffMax, time.Until(retryAt))); err != nil {
				return nil, err
			}
			if time.Now().Before(retryAt) {
				return nil, result.Wrap(result.System, "plugin_unavailable", lastErr,
					fmt.Sprintf("plugin %s failed: more than %d restarts within %v", s.conf.name, s.conf.maxRestarts, s.conf.restartWindow)).AsTransient()
			}
			continue
		}
		wait := s.backoff(n)
		if exempt {
			wait = s.conf.backoffInitial
		}
		if retrying {
			s.log.Infof("Starting plugin %s again after its failure", s.conf.name)
		} else if err := s.sleep(ctx, wait); err != nil {
			return nil, err
		}

		s.mu.Lock()
		s.exhaustedAt = time.Time{}
		at := time.Now()
		if !exempt {
			s.restarts = append(s.restarts, at)
		}
		s.mu.Unlock()
		if l != nil {
			l.done++
			if !exempt {
				l.counted = append(l.counted, at)
			}
		}
		s.metrics.restarts.Incr(1, s.conf.name)
		startCtx, cancel := context.WithTimeout(ctx, s.conf.startTimeout)
		inst, err := s.launch(startCtx)
		cancel()
		if err != nil {
			s.log.Warnf("Restart of plugin %s failed: %v", s.conf.name, err)
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			inst.kill()
			return nil, s.closedError()
		}
		s.current = inst
		s.mu.Unlock()
		if exempt {
			s.log.Infof("Restarted plugin %s (pid %d) to isolate a message that crashes or hangs it; the restart does not count against max_restarts", s.conf.name, inst.pid)
		} else {
			s.log.Infof("Restarted plugin %s (pid %d), restart %d within %v", s.conf.name, inst.pid, n+1, s.conf.restartWindow)
		}
		return inst, nil
	}
}

// start starts the plugin's first process, which counts as no restart, and
// its health loop.
func (s *supervisor) start(ctx context.Context) (*instance, error) {
	startCtx, cancel := context.WithTimeout(ctx, s.conf.startTimeout)
	inst, err := s.launch(startCtx)
	cancel()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		inst.kill()
		return nil, s.closedError()
	}
	s.current = inst
	if s.conf.healthInterval > 0 {
		// Under mu, before closed is set, so that close waits for it.
		s.health.Add(1)
		go s.healthLoop()
	}
	s.mu.Unlock()
	s.log.Infof("Started plugin %s (%s, pid %d)", s.conf.name, s.conf.path, inst.pid)
	return inst, nil
}

func (s *supervisor) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// retryAtLocked is when a plugin whose restart budget ran out may start
// again: when its oldest restart leaves the window, or with max_restarts 0
// a window after the failure.
func (s *supervisor) retryAtLocked() time.Time {
	if len(s.restarts) > 0 {
		return s.restarts[0].Add(s.conf.restartWindow)
	}
	return s.exhaustedAt.Add(s.conf.restartWindow)
}

func (s *supervisor) closedError() error {
	return result.Wrap(result.System, "plugin_stopped", errClosed, "plugin "+s.conf.name).AsTransient()
}

// pruneLocked forgets restarts that have left the window.
func (s *supervisor) pruneLocked(now time.Time) {
	i := 0
	for i < len(s.restarts) && now.Sub(s.restarts[i]) >= s.conf.restartWindow {
		i++
	}
	s.restarts = s.restarts[i:]
}

// backoff is the wait before the restart that follows n restarts within
// the window: initial_interval, doubled n times, at most max_interval.
func (s *supervisor) backoff(n int) time.Duration {
	d := s.conf.backoffInitial
	for range n {
		if d >= s.conf.backoffMax/2 {
			return s.conf.backoffMax
		}
		d *= 2
	}
	return min(d, s.conf.backoffMax)
}

// sleep waits for d, or until ctx ends or the supervisor closes.
func (s *supervisor) sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return result.Wrap(result.System, "canceled", ctx.Err(),
			fmt.Sprintf("plugin %s: the pipeline stopped while waiting to restart the plugin", s.conf.name)).AsTransient()
	case <-s.stop:
		return s.closedError()
	}
}

// retire kills inst, unless another caller already has, and records why;
// the next acquire restarts the plugin.
func (s *supervisor) retire(inst *instance, reason error) {
	s.mu.Lock()
	if s.current != inst {
		s.mu.Unlock()
		return
	}
	s.current = nil
	s.lastErr = fmt.Errorf("pid %d %w", inst.pid, reason)
	s.mu.Unlock()
	s.log.Warnf("Plugin %s (pid %d) %v; restarting it", s.conf.name, inst.pid, reason)
	inst.kill()
}

// healthLoop checks the plugin every health_interval, kills it when the
// check fails, and restarts a plugin that is gone, so that the next batch
// finds it running.
func (s *supervisor) healthLoop() {
	defer s.health.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	t := time.NewTicker(s.conf.healthInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		inst, failed := s.current, !s.exhaustedAt.IsZero()
		s.mu.Unlock()
		if inst == nil || inst.exited() {
			// A batch being isolated restarts the plugin itself, on its own
			// ledger: leave the restart to it.
			if !failed && s.isolating.TryRLock() {
				// Errors are logged by restart and met again by the next batch.
				_, _ = s.acquire(ctx, nil)
				s.isolating.RUnlock()
			}
			continue
		}
		if err := s.check(ctx, inst); err != nil && ctx.Err() == nil {
			s.metrics.callErrors.Incr(1, s.conf.name)
			s.retire(inst, err)
		}
	}
}

// check runs one health check.
func (s *supervisor) check(ctx context.Context, inst *instance) error {
	ctx, cancel := context.WithTimeout(ctx, s.conf.healthTimeout)
	defer cancel()
	resp, err := inst.rpc.CheckHealth(ctx, &pluginpb.CheckHealthRequest{})
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("did not answer its health check within %v", s.conf.healthTimeout)
	case err != nil:
		return fmt.Errorf("failed its health check: %w", err)
	case resp.Error != "":
		return fmt.Errorf("reported itself unhealthy: %s", resp.Error)
	}
	return nil
}

// close stops the health loop and the plugin, killing it with its process
// group if it has not exited when ctx ends. A batch still in flight gets a
// transient error.
func (s *supervisor) close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	inst := s.current
	s.current = nil
	close(s.stop)
	s.mu.Unlock()
	s.health.Wait()
	if inst != nil {
		inst.stop(ctx)
		s.log.Infof("Stopped plugin %s (pid %d)", s.conf.name, inst.pid)
	}
	return nil
}
