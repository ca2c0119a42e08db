package external

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/result"
)

func TestBackoffDoublesUpToTheMax(t *testing.T) {
	s := &supervisor{conf: config{backoffInitial: 200 * time.Millisecond, backoffMax: time.Second}}
	var got []time.Duration
	for n := range 6 {
		got = append(got, s.backoff(n))
	}
	assert.Equal(t, []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, time.Second, time.Second, time.Second}, got)
}

// A plugin that never starts uses up its restart budget, then fails each
// batch with a transient error without trying, until the window lets it
// try again.
func TestTheRestartBudgetIsCountedInItsWindow(t *testing.T) {
	for _, maxRestarts := range []int{2, 0} {
		t.Run(map[int]string{2: "max_restarts 2", 0: "max_restarts 0"}[maxRestarts], func(t *testing.T) {
			var launches atomic.Int64
			s := &supervisor{
				conf: config{
					name: "broken", maxRestarts: maxRestarts, restartWindow: 2 * time.Second,
					backoffInitial: time.Millisecond, backoffMax: 5 * time.Millisecond, startTimeout: time.Second,
				},
				log:     service.MockResources().Logger(),
				metrics: newMetrics(service.MockResources().Metrics()),
				stop:    make(chan struct{}),
				started: true,
				lastErr: errors.New("pid 1 exited"),
				launch: func(context.Context) (*instance, error) {
					launches.Add(1)
					return nil, errors.New("exec format error")
				},
			}
			_, err := s.acquire(context.Background(), nil)
			require.Error(t, err)
			e := result.Classify(err)
			assert.Equal(t, result.System, e.Category)
			assert.Equal(t, "plugin_unavailable", e.Code)
			assert.Equal(t, result.Retry, e.Action(), "the input retries the batch")
			assert.Equal(t, int64(maxRestarts), launches.Load(), "the budget's restarts were tried")

			_, err = s.acquire(context.Background(), nil)
			require.Error(t, err)
			assert.Equal(t, int64(maxRestarts), launches.Load(), "a failed plugin is not started again within the window")

			require.Eventually(t, func() bool {
				_, _ = s.acquire(context.Background(), nil)
				return launches.Load() > int64(maxRestarts)
			}, 10*time.Second, 10*time.Millisecond, "once the window has passed, the plugin is tried again")
		})
	}
}
