package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pipeline.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

func sum(offsets map[int32]int64) int64 {
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

func TestVersionIsInjectedAtBuildTime(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "qiflow")
	build := exec.Command("go", "build", "-o", bin,
		"-ldflags", "-X main.version=v9.8.7 -X main.commit=abc1234 -X main.date=2026-01-02", ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	out, err = exec.Command(bin, "--version").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "v9.8.7 (commit abc1234)")
	assert.Contains(t, string(out), "2026-01-02")
	assert.Regexp(t, `Benthos v4\.\d+\.\d+`, string(out), "the Benthos version built in")
	assert.Contains(t, string(out), "Benthos "+benthosVersion())
}

func TestListShowsTheQiflowPlugins(t *testing.T) {
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	for _, kind := range []string{"inputs", "outputs"} {
		out, err := exec.Command(bin, "list", "--format", "json", kind).Output()
		require.NoError(t, err)
		var listed map[string][]string
		require.NoError(t, json.Unmarshal(out, &listed))
		assert.Contains(t, listed[kind], "redpanda", "qiflow list %s", kind)
	}
}

// pipeline copies topic "in" to topic "out", partition for partition.
func pipeline(seeds string, checkpointLimit int) string {
	return fmt.Sprintf(`
http:
  enabled: false
input:
  redpanda:
    seed_brokers: [ %[1]q ]
    topics: [ in ]
    consumer_group: crash-test
    checkpoint_limit: %[2]d
    batch_count: 64
    commit_period: 200ms
    session_timeout: 6s
output:
  redpanda:
    seed_brokers: [ %[1]q ]
    topic: out
    key: ${! @kafka_key }
    partition: ${! @kafka_partition }
`, seeds, checkpointLimit)
}

func TestKilledMidStreamDeliversEverythingWithBoundedDuplicates(t *testing.T) {
	const (
		n               = 50_000
		partitions      = 12
		checkpointLimit = 256
	)
	broker := testenv.NewBroker(t, testenv.WithTopics(partitions, "in", "out"))
	broker.ProduceN(t, "in", n, func(i int) *kgo.Record {
		return &kgo.Record{Key: []byte("k" + strconv.Itoa(i%101)), Value: []byte(strconv.Itoa(i))}
	})
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	config := writeConfig(t, pipeline(broker.SeedList(), checkpointLimit))

	first := testenv.StartProcess(t, bin, nil, "run", config)
	require.Eventually(t, func() bool {
		return sum(broker.EndOffsets(t, "out")) >= n/4
	}, 60*time.Second, 10*time.Millisecond, "qiflow never got going:\n%s", first.Output())
	require.NoError(t, first.Kill())
	code, err := first.Wait(10 * time.Second)
	require.NoError(t, err)
	require.Equal(t, -1, code, "killed by SIGKILL")
	writtenAtKill := sum(broker.EndOffsets(t, "out"))
	require.Less(t, writtenAtKill, int64(n), "the kill came mid-stream")

	second := testenv.StartProcess(t, bin, nil, "run", config)
	broker.WaitForCommit(t, "crash-test", "in", 90*time.Second, second.Output)
	require.NoError(t, second.Signal(syscall.SIGTERM))
	code, err = second.Wait(30 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "SIGTERM stops qiflow cleanly:\n%s", second.Output())

	seen := map[string]int{}
	for _, r := range broker.ConsumeAll(t, "out") {
		seen[string(r.Value)]++
	}
	duplicates := 0
	for i := range n {
		times := seen[strconv.Itoa(i)]
		require.Positive(t, times, "message %d was lost", i)
		duplicates += times - 1
	}
	t.Logf("killed after %d of %d messages were written; %d duplicates after restart (bound %d)",
		writtenAtKill, n, duplicates, checkpointLimit*partitions)
	assert.LessOrEqual(t, duplicates, checkpointLimit*partitions)
}

func TestRejectedCredentialsExitNonZeroWithOneClearLine(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithSASL("PLAIN", "qiflow", "right"), testenv.WithTopics(1, "in"))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	config := writeConfig(t, fmt.Sprintf(`
http:
  enabled: false
input:
  redpanda:
    seed_brokers: [ %q ]
    topics: [ in ]
    consumer_group: g
    sasl: { mechanism: PLAIN, user: qiflow, password: "${BROKER_PASSWORD}" }
output:
  drop: {}
`, broker.SeedList()))

	proc := testenv.StartProcess(t, bin, []string{"BROKER_PASSWORD=right"}, "run", config)
	proc.WaitForOutput(t, "Input type redpanda is now active", 30*time.Second)
	require.NoError(t, proc.Signal(syscall.SIGTERM))
	code, err := proc.Wait(30 * time.Second)
	require.NoError(t, err)
	assert.Equal(t, 0, code, "the right password runs and stops cleanly:\n%s", proc.Output())

	for _, args := range [][]string{{"run", config}, {"run", "--watch", "--http-address", "", config}} {
		proc = testenv.StartProcess(t, bin, []string{"BROKER_PASSWORD=wrong-secret"}, args...)
		code, err = proc.Wait(30 * time.Second)
		require.NoError(t, err, "%v: qiflow stops by itself on rejected credentials:\n%s", args, proc.Output())
		assert.Equal(t, exitHalted, code, "%v: %s", args, proc.Output())
		out := proc.Output()
		assert.Equal(t, 1, strings.Count(out, "Stopping the redpanda input (SECURITY)"), "%v: %s", args, out)
		assert.Contains(t, out, "SASL_AUTHENTICATION_FAILED")
		assert.Zero(t, strings.Count(out, "Failed to connect"), "%v: rejected credentials are not retried:\n%s", args, out)
		assert.NotContains(t, out, "wrong-secret")
	}
}

func TestOneStreamsHaltLeavesTheOtherStreamsRunning(t *testing.T) {
	broker := testenv.NewBroker(t, testenv.WithSASL("PLAIN", "qiflow", "right"), testenv.WithTopics(1, "in"))
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	stream := func(group, password string) string {
		return fmt.Sprintf(`
input:
  redpanda:
    seed_brokers: [ %q ]
    topics: [ in ]
    consumer_group: %s
    sasl: { mechanism: PLAIN, user: qiflow, password: %q }
output:
  drop: {}
`, broker.SeedList(), group, password)
	}
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.yaml"), filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(good, []byte(stream("g-good", "right")), 0o600))
	require.NoError(t, os.WriteFile(bad, []byte(stream("g-bad", "wrong")), 0o600))
	for _, command := range [][]string{{"streams"}, {"streams", "--watch"}} {
		t.Run(strings.Join(command, " "), func(t *testing.T) {
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			args := append(command, "--set", "http.address="+addr, good, bad)
			proc := testenv.StartProcess(t, bin, nil, args...)
			proc.WaitForOutput(t, "Stopping the redpanda input (SECURITY)", 30*time.Second)
			broker.ProduceN(t, "in", 100, func(i int) *kgo.Record { return &kgo.Record{Value: []byte(strconv.Itoa(i))} })
			broker.WaitForCommit(t, "g-good", "in", 30*time.Second, proc.Output)
			require.NoError(t, proc.Signal(syscall.SIGTERM))
			_, err := proc.Wait(30 * time.Second)
			require.NoError(t, err)
		})
	}
}
