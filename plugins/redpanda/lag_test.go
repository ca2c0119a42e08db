package redpanda

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
	qiprom "github.com/qicore/qiflow/plugins/prometheus"
)

// lagGauge reads qiflow_redpanda_consumer_lag of group from the process's
// Prometheus registry, by partition of topic.
func lagGauge(t *testing.T, group, topic string) map[int32]int64 {
	t.Helper()
	families, err := qiprom.Registry().Gather()
	require.NoError(t, err)
	lags := map[int32]int64{}
	for _, f := range families {
		if f.GetName() != "qiflow_redpanda_consumer_lag" {
			continue
		}
		assert.Contains(t, f.GetHelp(), "committed offset", "the gauge is described")
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["group"] != group || labels["topic"] != topic {
				continue
			}
			p, err := strconv.Atoi(labels["partition"])
			require.NoError(t, err)
			lags[int32(p)] += int64(gaugeValue(m))
		}
	}
	return lags
}

func gaugeValue(m *dto.Metric) float64 { return m.GetGauge().GetValue() }

// startMeteredStream runs the input into consume with the prometheus
// exporter, so that its gauges can be read back from the registry.
func startMeteredStream(t *testing.T, input string, consume service.MessageBatchHandlerFunc) *service.Stream {
	t.Helper()
	b := service.NewStreamBuilder()
	b.SetLogger(slog.New(slog.DiscardHandler))
	require.NoError(t, b.SetMetricsYAML("prometheus: {}"))
	require.NoError(t, b.AddInputYAML(input))
	require.NoError(t, b.AddBatchConsumerFunc(consume))
	stream, err := b.Build()
	require.NoError(t, err)
	go func() { _ = stream.Run(context.Background()) }()
	t.Cleanup(func() { _ = stream.StopWithin(10 * time.Second) })
	return stream
}

// TestConsumerLagGaugeCountsWhatTheGroupHasNotCommitted makes every write
// fail, so the group commits nothing: the lag of each partition is then
// every message in it. A second member of the group that writes everything
// takes the partitions over: its lag falls to 0 once it commits, and the
// first member, which gave the partitions up, reports 0 for them.
func TestConsumerLagGaugeCountsWhatTheGroupHasNotCommitted(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithTopics(3, "lagged"))
	produceKeyed(t, broker, "lagged", 300)
	ends := broker.EndOffsets(t, "lagged")
	input := inputYAML(broker.SeedList(), "lagged", "lag-group")

	failing := startMeteredStream(t, input, func(context.Context, service.MessageBatch) error {
		return errors.New("the database is down")
	})
	want := map[int32]int64{}
	for p, end := range ends {
		want[p] = end
	}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(want, lagGauge(t, "lag-group", "lagged")) },
		30*time.Second, 100*time.Millisecond, "lag = every message of each partition while nothing is written")
	require.NoError(t, failing.StopWithin(10*time.Second))

	startMeteredStream(t, input, func(context.Context, service.MessageBatch) error { return nil })
	waitForCommitted(t, broker, "lag-group", "lagged", 30*time.Second)
	zero := map[int32]int64{}
	for p := range ends {
		zero[p] = 0
	}
	require.Eventually(t, func() bool { return assert.ObjectsAreEqual(zero, lagGauge(t, "lag-group", "lagged")) },
		30*time.Second, 100*time.Millisecond, "lag 0 once everything is committed")
}
