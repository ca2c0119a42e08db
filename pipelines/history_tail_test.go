package pipelines_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/qicore/qiflow/internal/testenv"
	exchangerouter "github.com/qicore/qiflow/plugins/exchange_router"
)

// TestTheTailExampleRepublishesRowsInsertedWhileItRuns runs
// examples/history_tail_prices.yaml: rows already there and rows inserted
// while it runs reach crypto-prices-mirror once each, on the router's
// partitions, in time order; restarted, it repeats none.
func TestTheTailExampleRepublishesRowsInsertedWhileItRuns(t *testing.T) {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "crypto-prices-mirror", 12)
	dsn := withTables(t, testenv.Database(t))
	// Two hours ago, as insertHistory does: 20 ticks of 400 series.
	insertHistory(t, dsn, 20)
	placer, err := exchangerouter.NewPlacer("topic: crypto-prices-mirror\npartitions: 12\nunknown_exchange: default")
	require.NoError(t, err)
	check := replayCheck{t: t, fromTick: 0, placer: placer}

	tail := qiflow(t, env(broker, dsn), "run", "examples/history_tail_prices.yaml")
	waitFor(t, "the rows already there", 2*time.Minute, func() bool {
		return len(broker.ConsumeAll(t, "crypto-prices-mirror")) == 20*historySeries
	}, tail.Output)

	// While the tail runs, ticks 20..39 of every series arrive, and ticks
	// 0..19 are deleted and inserted again: those are behind its position
	// and are not sent twice.
	execSQL(t, dsn, `DELETE FROM crypto_prices`)
	insertHistory(t, dsn, 40)
	waitFor(t, "the rows inserted while it runs", 2*time.Minute, func() bool {
		return len(broker.ConsumeAll(t, "crypto-prices-mirror")) == 40*historySeries
	}, tail.Output)
	stop(t, tail)

	tail = qiflow(t, env(broker, dsn), "run", "examples/history_tail_prices.yaml")
	tail.WaitForOutput(t, "Resuming crypto_prices from checkpoint", time.Minute)
	time.Sleep(3 * time.Second) // two poll intervals: nothing new may come
	stop(t, tail)

	records := broker.ConsumeAll(t, "crypto-prices-mirror")
	assert.Len(t, records, 40*historySeries, "a restarted tail repeats nothing")
	check.toTick = 40
	duplicates, _ := check.run(records)
	assert.Zero(t, duplicates)
}
