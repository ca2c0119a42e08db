package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/testenv"
)

// The data set and rounds of BenchmarkJob; QIFLOW_BENCH_ROWS sets the
// distinct valid messages and QIFLOW_BENCH_ROUNDS the rounds.
var (
	jobRows   = envInt("QIFLOW_BENCH_ROWS", 200_000)
	jobRounds = envInt("QIFLOW_BENCH_ROUNDS", 3)
)

const (
	jobTopic         = "crypto-prices"
	jobDLQ           = "crypto-prices.dlq"
	jobPartitions    = 12
	jobResendPercent = 2
	jobInvalid       = 40
)

// jobCase is one program doing the job.
type jobCase struct {
	name  string // of the sub-benchmarks
	label string // in the table
	kind  int
}

const (
	caseReference = iota
	caseQiflowPrice
	caseQiflowMapping
	caseQiflowExactlyOnce
)

// jobCases run in this order in every round: the reference first, so that
// each qiflow case can report its ratio to the reference of its round.
var jobCases = []jobCase{
	{"a_reference", "reference consumer (bench/reference)", caseReference},
	{"b_qiflow_price", "qiflow, prices.yaml (format: price)", caseQiflowPrice},
	{"c_qiflow_mapping", "qiflow, Bloblang mapping", caseQiflowMapping},
	{"d_qiflow_exactly_once", "qiflow, exactly once (no key)", caseQiflowExactlyOnce},
}

// measurement is one case in one round.
type measurement struct {
	round     int
	wall      time.Duration // from process start to the whole topic committed
	client    time.Duration // CPU of the client process over that time
	postgres  time.Duration // CPU of the PostgreSQL cluster over that time
	harness   time.Duration // CPU of the benchmark process: kfake and the harness
	batches   float64       // batches written, as the client counts them
	rollbacks int64         // pg_stat_database.xact_rollback of the case's database
}

// BenchmarkJob measures qiflow's whole ingest job against the reference
// consumer (DESIGN.md, Performance; docs/performance.md): one data set of
// price messages with re-sends and invalid messages on a kfake broker, and
// interleaved rounds of each case, each with a fresh consumer group and a
// fresh crypto_prices table. It prints medians over the rounds and the
// targets of issue 12; the targets are never asserted. QIFLOW_BENCH_PPROF=path
// adds an unmeasured run of qiflow (prices.yaml) and of the reference, each
// saving a CPU profile: to path and to path.reference.
func BenchmarkJob(b *testing.B) {
	env := &jobEnv{
		broker:    testenv.NewBroker(b, testenv.WithTopics(jobPartitions, jobTopic, jobDLQ)),
		qiflowBin: testenv.BuildBinary(b, "./cmd/qiflow"),
		refBin:    testenv.BuildBinary(b, "./bench/reference"),
		results:   map[string][]measurement{},
	}
	env.data = produceJob(b, env.broker, jobRows)
	env.postmaster = testenv.PostmasterPID(b)
	if env.postmaster == 0 {
		b.Log("PostgreSQL is not this process's cluster (" + testenv.EnvDatabaseURL + "): its CPU is not measured")
	}

	for round := 1; round <= jobRounds; round++ {
		for _, c := range jobCases {
			b.Run(fmt.Sprintf("r%d_%s", round, c.name), func(b *testing.B) {
				var m measurement
				for b.Loop() { // once with -benchtime 1x; the last run counts
					m = env.run(b, c, round, "")
				}
				m.round = round
				env.results[c.name] = append(env.results[c.name], m)
				env.report(b, c, m, round)
			})
		}
	}
	for _, c := range jobCases {
		b.Run("median_"+c.name, func(b *testing.B) { env.reportMedians(b, c) })
	}
	b.Run("latency_at_5000_msgs", func(b *testing.B) {
		for b.Loop() {
			env.p50, env.p99 = latency(b)
			b.ReportMetric(env.p50, "p50-ms")
			b.ReportMetric(env.p99, "p99-ms")
		}
	})
	if path := os.Getenv("QIFLOW_BENCH_PPROF"); path != "" {
		// Unmeasured runs, so that profiling costs no round anything.
		b.Run("pprof_qiflow_price", func(b *testing.B) {
			env.run(b, jobCases[caseQiflowPrice], 0, path)
			b.ReportMetric(0, "ns/op")
		})
		b.Run("pprof_reference", func(b *testing.B) {
			env.run(b, jobCases[caseReference], 0, path+".reference")
			b.ReportMetric(0, "ns/op")
		})
	}
	fmt.Print(env.table())
}

// jobEnv is what the rounds share.
type jobEnv struct {
	broker            *testenv.Broker
	qiflowBin, refBin string
	data              jobData
	postmaster        int
	kind              string // plain table or hypertable
	results           map[string][]measurement
	p50, p99          float64
}

// jobData counts the messages on the topic.
type jobData struct{ valid, resent, invalid, messages int }

// jobMessage is the i-th distinct valid price message: 50 coins × 8
// exchanges, one tick per second, in every spelling the wire format
// allows: decimal strings and JSON numbers, epoch milliseconds and RFC 3339,
// exchange ids to normalise, optional fields absent or null.
func jobMessage(i int) []byte {
	coin, exchange := i%50, (i/50)%8
	m := fmt.Appendf(nil, `{"coinId":"coin-%02d","symbol":"C%02d",`, coin, coin)
	if i%7 == 3 {
		m = fmt.Appendf(m, `"exchangeId":" Exchange-%d ",`, exchange)
	} else {
		m = fmt.Appendf(m, `"exchangeId":"exchange-%d",`, exchange)
	}
	q := `"`
	if i%4 == 1 {
		q = ""
	}
	m = fmt.Appendf(m, `"usdPrice":%s%d.%08d%s,`, q, 100+i%9000, i%100_000_000, q)
	if i%6 != 0 {
		m = fmt.Appendf(m, `"marketCap":%s%d.%02d%s,"volume24h":%s%d.%02d%s,`, q, 1_000_000_000+i, i%100, q, q, 5_000_000+i, i%100, q)
	}
	m = fmt.Appendf(m, `"change24h":%s%d.%04d%s,`, q, i%20, i%10000, q)
	if i%11 == 0 {
		m = append(m, `"change7d":null,`...)
	} else {
		m = fmt.Appendf(m, `"change7d":%s-%d.%04d%s,`, q, i%30, i%10000, q)
	}
	if ts := tickTime(i); i%5 == 2 {
		m = fmt.Appendf(m, `"lastUpdated":"%s",`, time.UnixMilli(ts).UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	} else {
		m = fmt.Appendf(m, `"lastUpdated":%d,`, ts)
	}
	return append(m, `"source":"bench","attribution":"qiflow benchmark"}`...)
}

// invalidMessage is the k-th invalid message, of one of ten kinds that
// every case must dead-letter.
func invalidMessage(k int) []byte {
	ts := tickTime(k)
	good := fmt.Sprintf(`"coinId":"bad-%d","symbol":"BAD","exchangeId":"exchange-1","lastUpdated":%d,"source":"bench","attribution":"qiflow benchmark"`, k, ts)
	switch k % 10 {
	case 0: // malformed JSON: cut short
		return fmt.Appendf(nil, `{"coinId":"bad-%d","symbol":"BAD","usdPrice":"12.5"`, k)
	case 1:
		return fmt.Appendf(nil, `{%s,"usdPrice":"-12.5"}`, good) // negative price
	case 2:
		return fmt.Appendf(nil, `{%s,"usdPrice":"0.00000000"}`, good) // zero price
	case 3: // missing coinId
		return fmt.Appendf(nil, `{"symbol":"BAD","exchangeId":"exchange-1","usdPrice":"12.5","lastUpdated":%d,"source":"bench","attribution":"qiflow benchmark"}`, ts)
	case 4: // wrong type: a number for a text field
		return fmt.Appendf(nil, `{"coinId":"bad-%d","symbol":42,"exchangeId":"exchange-1","usdPrice":"12.5","lastUpdated":%d,"source":"bench","attribution":"qiflow benchmark"}`, k, ts)
	case 5:
		return fmt.Appendf(nil, `{%s,"usdPrice":{"amount":"12.5"}}`, good) // wrong type: an object for a price
	case 6:
		return fmt.Appendf(nil, `{%s,"usdPrice":"12.123456789"}`, good) // 9 decimals for NUMERIC(20,8)
	case 7:
		return fmt.Appendf(nil, `{%s,"usdPrice":"1234567890123.5"}`, good) // 13 integer digits for NUMERIC(20,8)
	case 8: // not a timestamp
		return fmt.Appendf(nil, `{"coinId":"bad-%d","symbol":"BAD","exchangeId":"exchange-1","usdPrice":"12.5","lastUpdated":"yesterday","source":"bench","attribution":"qiflow benchmark"}`, k)
	default: // empty text
		return fmt.Appendf(nil, `{"coinId":"bad-%d","symbol":"BAD","exchangeId":"exchange-1","usdPrice":"12.5","lastUpdated":%d,"source":"   ","attribution":"qiflow benchmark"}`, k, ts)
	}
}

// produceJob writes the data set once: n distinct valid messages, with
// re-sends of random earlier messages (2 % of n) and the invalid messages
// interleaved at random points. Valid messages are keyed by exchange and
// coin, so a re-send lands on its original's partition.
func produceJob(b *testing.B, broker *testenv.Broker, n int) jobData {
	rng := rand.New(rand.NewPCG(12, 2026))
	resendsAfter := make([]int, n)
	invalidAfter := make([]int, n)
	data := jobData{valid: n, resent: n * jobResendPercent / 100, invalid: jobInvalid}
	for range data.resent {
		resendsAfter[rng.IntN(n)]++
	}
	for range data.invalid {
		invalidAfter[rng.IntN(n)]++
	}
	type event struct{ index, kind int } // kind 0: valid or re-sent, 1: invalid
	var seq []event
	invalid := 0
	for i := range n {
		seq = append(seq, event{i, 0})
		for range resendsAfter[i] {
			seq = append(seq, event{rng.IntN(i + 1), 0})
		}
		for range invalidAfter[i] {
			seq = append(seq, event{invalid, 1})
			invalid++
		}
	}
	data.messages = len(seq)
	broker.ProduceN(b, jobTopic, len(seq), func(i int) *kgo.Record {
		e := seq[i]
		if e.kind == 1 {
			return &kgo.Record{Key: fmt.Appendf(nil, "invalid-%d", e.index), Value: invalidMessage(e.index)}
		}
		return &kgo.Record{Key: fmt.Appendf(nil, "exchange-%d/coin-%02d", (e.index/50)%8, e.index%50), Value: jobMessage(e.index)}
	})
	return data
}

// pricesMapping is the timescale output's generic path: a Bloblang mapping
// to the columns that format: price fills, with the wire format's rules
// (required text trimmed and not empty, exchange ids lower case, prices
// > 0); the column types check precision, scale and length.
const pricesMapping = `    mapping: |
      map text {
        root = if this.trim() == "" { throw("empty string") } else { this.trim() }
      }
      root.last_updated = this.lastUpdated
      root.coin_id = this.coinId.apply("text")
      root.symbol = this.symbol.apply("text")
      root.exchange_id = this.exchangeId.apply("text").lowercase()
      root.usd_price = if this.usdPrice.number() > 0 { this.usdPrice } else { throw("usdPrice must be > 0") }
      root.market_cap = this.marketCap
      root.volume_24h = this.volume24h
      root.change_24h = this.change24h
      root.change_7d = this.change7d
      root.source = this.source.apply("text")
      root.attribution = this.attribution.apply("text")
`

// pipeline writes pipelines/prices.yaml with its consumer group renamed,
// and with the mapping in place of format: price when asked.
func pipeline(b *testing.B, group string, kind int) string {
	file, shippedGroup := "prices.yaml", "qiflow-prices"
	if kind == caseQiflowExactlyOnce {
		file, shippedGroup = filepath.Join("examples", "prices_exactly_once.yaml"), "qiflow-prices-log"
	}
	mapping := kind == caseQiflowMapping
	src, err := os.ReadFile(filepath.Join("..", "pipelines", file))
	if err != nil {
		b.Fatal(err)
	}
	text := string(src)
	replace := func(old, new string) {
		if strings.Count(text, old) != 1 {
			b.Fatalf("pipelines/%s: want %q once, to change it for the benchmark", file, old)
		}
		text = strings.Replace(text, old, new, 1)
	}
	replace("consumer_group: "+shippedGroup+"\n", "consumer_group: "+group+"\n")
	if mapping {
		replace("    format: price\n", pricesMapping)
	}
	path := filepath.Join(b.TempDir(), group+".yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// run runs case c once over the whole topic, with a fresh consumer group
// and table, checks the rows and dead letters, and returns what it cost.
// With profileTo it also saves a CPU profile of the client there: qiflow's
// from its pprof endpoint, the reference's from its -cpuprofile.
func (e *jobEnv) run(b *testing.B, c jobCase, round int, profileTo string) measurement {
	group := fmt.Sprintf("bench-%s-r%d", c.name, round)
	table, want := "crypto_prices", e.data.valid
	var dsn, kind string
	if c.kind == caseQiflowExactlyOnce {
		// Every record is a row: the re-sends too.
		table, want = "crypto_prices_log", e.data.valid+e.data.resent
		dsn, kind = logTable(b)
	} else {
		dsn, kind = pricesTable(b)
	}
	e.kind = kind
	dlqBefore := e.broker.EndOffsets(b, jobDLQ)
	rollbacksBefore := xactRollback(b, dsn)
	env := []string{"REDPANDA_BROKERS=" + e.broker.SeedList(), "DATABASE_URL=" + dsn}

	var m measurement
	pgBefore, harnessBefore := e.cpu(b)
	start := time.Now()
	var proc *testenv.Process
	port := 0
	var profiled chan struct{}
	if c.kind == caseReference {
		args := []string{"-group", group}
		if profileTo != "" {
			args = append(args, "-cpuprofile", profileTo)
		}
		proc = testenv.StartProcess(b, e.refBin, env, args...)
	} else {
		port = testenv.FreePort(b)
		args := []string{"run", "--set", fmt.Sprintf("http.address=127.0.0.1:%d", port)}
		if profileTo != "" {
			args = append(args, "--set", "http.debug_endpoints=true")
		}
		proc = testenv.StartProcess(b, e.qiflowBin, env, append(args, pipeline(b, group, c.kind))...)
		if profileTo != "" {
			profiled = profileRun(b, port, e.profileSeconds(), profileTo)
		}
	}
	e.broker.WaitForCommit(b, group, jobTopic, 10*time.Minute, proc.Output)
	m.wall = time.Since(start)
	client, err := processCPU(proc.PID())
	if err != nil {
		b.Fatalf("CPU of the client: %v", err)
	}
	pgAfter, harnessAfter := e.cpu(b)
	m.client, m.postgres, m.harness = client, pgAfter-pgBefore, harnessAfter-harnessBefore
	if c.kind != caseReference {
		m.batches = metric(b, port, "qiflow_timescale_batches_total")
	}
	if profiled != nil {
		<-profiled
	}

	if err := proc.Signal(syscall.SIGTERM); err != nil {
		b.Fatal(err)
	}
	if code, err := proc.Wait(60 * time.Second); err != nil || code != 0 {
		b.Errorf("%s stopped with code %d (%v); output:\n%s", c.name, code, err, lastLines(proc.Output(), 20))
	}
	if c.kind == caseReference {
		m.batches = referenceBatches(b, proc.Output())
	}
	m.rollbacks = xactRollback(b, dsn) - rollbacksBefore

	if got := countTable(b, dsn, table); got != want {
		b.Fatalf("%s: %d rows in %s, want %d", c.name, got, table, want)
	}
	e.checkDeadLetters(b, c, dlqBefore)
	return m
}

// cpu reads the CPU used so far by the PostgreSQL cluster (0 when it is not
// this process's) and by this process.
func (e *jobEnv) cpu(b *testing.B) (postgres, harness time.Duration) {
	var err error
	if e.postmaster != 0 {
		if postgres, err = clusterCPU(e.postmaster); err != nil {
			b.Fatalf("CPU of PostgreSQL: %v", err)
		}
	}
	if harness, err = processCPU(os.Getpid()); err != nil {
		b.Fatalf("CPU of the benchmark: %v", err)
	}
	return postgres, harness
}

// checkDeadLetters checks that this case's dead letters are the invalid
// messages, one each, with qiflow's headers.
func (e *jobEnv) checkDeadLetters(b *testing.B, c jobCase, before map[int32]int64) {
	codes := map[string]int{}
	n := 0
	for _, r := range e.broker.ConsumeAll(b, jobDLQ) {
		if r.Offset < before[r.Partition] {
			continue
		}
		n++
		code := "(none)"
		for _, h := range r.Headers {
			if h.Key == "qiflow-error-code" {
				code = string(h.Value)
			}
		}
		codes[code]++
	}
	if n != e.data.invalid || codes["(none)"] > 0 {
		b.Fatalf("%s: %d dead letters (by qiflow-error-code: %v), want the %d invalid messages", c.name, n, codes, e.data.invalid)
	}
	b.Logf("%s: dead letters by qiflow-error-code: %v", c.name, codes)
}

// xactRollback returns the rolled-back transactions of the database at
// dsn once its client connections other than this one have ended, and so
// have flushed their statistics, and two reads agree.
func xactRollback(b *testing.B, dsn string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	read := func() (others int, rollbacks int64) {
		err := conn.QueryRow(ctx, `
SELECT (SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()),
       (SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database())`).Scan(&others, &rollbacks)
		if err != nil {
			b.Fatalf("read pg_stat_database: %v", err)
		}
		return others, rollbacks
	}
	last := int64(-1)
	for {
		// Each statement runs in its own transaction and so reads fresh
		// statistics; clearing the snapshot makes that explicit.
		if _, err := conn.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
			b.Fatal(err)
		}
		others, rollbacks := read()
		if others == 0 && rollbacks == last {
			return rollbacks
		}
		if others == 0 {
			last = rollbacks
		}
		select {
		case <-ctx.Done():
			b.Fatalf("pg_stat_database did not settle: %d other connections, %d rollbacks", others, rollbacks)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// metric sums the samples of a counter on qiflow's /metrics, or is NaN
// (and logged) when it is missing.
func metric(b *testing.B, port int, name string) float64 {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		b.Logf("read /metrics: %v", err)
		return math.NaN()
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil || families[name] == nil {
		b.Logf("/metrics has no %s (%v)", name, err)
		return math.NaN()
	}
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		sum += m.GetCounter().GetValue()
	}
	return sum
}

var referenceLine = regexp.MustCompile(`reference: batches=(\d+)`)

// referenceBatches reads the batches the reference wrote from the line it
// prints on exit.
func referenceBatches(b *testing.B, output string) float64 {
	match := referenceLine.FindStringSubmatch(output)
	if match == nil {
		b.Logf("the reference printed no batches= line:\n%s", lastLines(output, 20))
		return math.NaN()
	}
	n, _ := strconv.Atoi(match[1])
	return float64(n)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// profileSeconds covers a qiflow run: the slowest measured one, plus a
// second.
func (e *jobEnv) profileSeconds() int {
	slowest := 5 * time.Second
	if runs := e.results[jobCases[caseQiflowPrice].name]; len(runs) > 0 {
		slowest = slices.MaxFunc(runs, func(a, b measurement) int { return int(a.wall - b.wall) }).wall
	}
	return int(slowest.Seconds()) + 2
}

// profileRun saves a CPU profile of seconds of the qiflow serving port to
// path, from as soon as its HTTP server answers; the channel closes when
// the profile is saved.
func profileRun(b *testing.B, port, seconds int, path string) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, seconds)
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				defer resp.Body.Close()
				f, err := os.Create(path)
				if err == nil {
					_, err = f.ReadFrom(resp.Body)
					err = errors.Join(err, f.Close())
				}
				if err != nil {
					b.Logf("save CPU profile: %v", err)
				}
				return
			}
			if time.Now().After(deadline) {
				b.Logf("CPU profile: %v", err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return done
}

// logTable creates crypto_prices_log, the exactly-once example's table:
// crypto_prices without its key, a hypertable when TimescaleDB is there.
func logTable(b *testing.B) (string, string) {
	dsn := testenv.Database(b)
	exec(b, dsn, strings.Replace(strings.Replace(createPrices, "CREATE TABLE crypto_prices", "CREATE TABLE crypto_prices_log", 1),
		",\n  PRIMARY KEY (last_updated, coin_id, exchange_id))", ")", 1))
	kind := "plain table"
	if testenv.TimescaleAvailable(b, dsn) {
		exec(b, dsn, `SELECT create_hypertable('crypto_prices_log', by_range('last_updated', INTERVAL '1 day'))`)
		kind = "hypertable"
	}
	return dsn, kind
}

func countTable(b *testing.B, dsn, table string) int {
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return -1
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		return -1
	}
	return n
}
