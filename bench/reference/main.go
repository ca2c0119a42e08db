// Command reference is the yardstick of BenchmarkJob (docs/performance.md):
// the leanest honest program doing qiflow's job for prices, written apart
// from qiflow's code so that it does not move when qiflow does.
//
// It consumes crypto-prices in a consumer group, decodes each message in one
// pass by the wire format's rules (docs/wire-format.md) into exact decimals,
// dead-letters the invalid ones to crypto-prices.dlq with the headers qiflow
// uses, and writes the rest with binary COPY into a temporary table and
// INSERT … ON CONFLICT DO NOTHING, in one transaction per batch: of a key
// repeated within a batch the first message wins, and keys the table holds
// are skipped. A batch's offsets are committed only after its transaction
// and its dead letters are, and in the order the batches were polled.
//
// SIGTERM (or SIGINT) stops polling; the batches in flight are written and
// committed, and it prints what it did on one line and exits. A failure it
// cannot retry ends it with status 1 and commits nothing after it. A
// rebalance may hand a written but uncommitted batch to another member,
// which writes it again: the writes are idempotent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	var (
		brokers  = flag.String("brokers", os.Getenv("REDPANDA_BROKERS"), "comma-separated seed brokers (default $REDPANDA_BROKERS)")
		dsn      = flag.String("dsn", os.Getenv("DATABASE_URL"), "PostgreSQL URL (default $DATABASE_URL)")
		group    = flag.String("group", "reference-prices", "consumer group")
		topic    = flag.String("topic", "crypto-prices", "topic to consume")
		dlq      = flag.String("dlq", "crypto-prices.dlq", "topic for dead letters")
		batch    = flag.Int("batch", 2000, "most messages per batch (one transaction)")
		writers  = flag.Int("writers", 2, "batches written at once, each on its own connection")
		drainFor = flag.Duration("drain", 10*time.Second, "how long a stop waits for the batches in flight")
		profile  = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	)
	flag.Parse()
	if *profile != "" {
		stopProfile, err := startProfile(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "reference:", err)
			os.Exit(1)
		}
		defer stopProfile()
	}
	total, err := run(config{
		brokers: strings.Split(*brokers, ","), dsn: *dsn, group: *group, topic: *topic, dlq: *dlq,
		batch: *batch, writers: *writers, drain: *drainFor,
	})
	fmt.Printf("reference: batches=%d messages=%d inserted=%d duplicates=%d dead_letters=%d rollbacks=%d\n",
		total.batches, total.messages, total.inserted, total.duplicates, total.deadLetters, total.rollbacks)
	if err != nil {
		fmt.Fprintln(os.Stderr, "reference:", err)
		os.Exit(1)
	}
}

// startProfile starts a CPU profile into path and returns what stops it.
func startProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}

type config struct {
	brokers                []string
	dsn, group, topic, dlq string
	batch, writers         int
	drain                  time.Duration
}

// totals are what the run did, counted by the committer.
type totals struct {
	stats
	batches, messages int
}

// work is one polled batch on its way through a writer to the committer.
type work struct {
	records []*kgo.Record
	done    chan error // receives the write's outcome once
	stats   stats
}

func run(cfg config) (totals, error) {
	stop, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	// Writes outlive the stop signal by at most cfg.drain.
	writeCtx, cancelWrites := context.WithCancel(context.Background())
	defer cancelWrites()
	go func() {
		<-stop.Done()
		time.AfterFunc(cfg.drain, cancelWrites)
	}()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.brokers...),
		kgo.ConsumerGroup(cfg.group),
		kgo.ConsumeTopics(cfg.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
	)
	if err != nil {
		return totals{}, fmt.Errorf("kafka client: %w", err)
	}
	defer cl.Close()

	ws := make([]*writer, cfg.writers)
	defer func() {
		for _, w := range ws {
			if w != nil && w.conn != nil {
				_ = w.conn.Close(context.Background())
			}
		}
	}()
	for i := range ws {
		ws[i] = &writer{dsn: cfg.dsn}
		if err := ws[i].connect(writeCtx); err != nil {
			return totals{}, err
		}
	}

	// The poller hands each batch to a free writer and, in poll order, to
	// the committer, which waits for each batch's write before committing
	// its offsets, so a commit never passes a batch not yet written.
	queue := make(chan *work)
	ordered := make(chan *work, cfg.writers+1)
	var writing sync.WaitGroup
	for _, w := range ws {
		writing.Go(func() {
			for b := range queue {
				b.done <- w.handle(writeCtx, cl, b, cfg.dlq)
			}
		})
	}
	var total totals
	committed := make(chan error, 1)
	go func() { committed <- commitInOrder(cl, ordered, &total, cancel) }()

	for stop.Err() == nil {
		fetches := cl.PollRecords(stop, cfg.batch)
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				fmt.Fprintf(os.Stderr, "reference: fetch %s/%d: %v\n", t, p, err)
			}
		})
		if records := fetches.Records(); len(records) > 0 {
			b := &work{records: records, done: make(chan error, 1)}
			ordered <- b
			queue <- b
		}
	}
	close(queue)
	close(ordered)
	writing.Wait()
	return total, <-committed
}

// handle writes one batch: its rows in one transaction, its dead letters
// acknowledged by the broker.
func (w *writer) handle(ctx context.Context, cl *kgo.Client, b *work, dlq string) error {
	dead, st := w.prepare(b.records, dlq)
	err := w.write(ctx, &st)
	if err == nil && len(dead) > 0 {
		err = cl.ProduceSync(ctx, dead...).FirstErr()
	}
	b.stats = st
	return err
}

// commitInOrder commits each batch's offsets once it is written, in poll
// order. After a failed batch it commits nothing more and stops the poller.
func commitInOrder(cl *kgo.Client, ordered <-chan *work, total *totals, stopPolling func()) error {
	var failed error
	for b := range ordered {
		err := <-b.done
		if failed != nil {
			continue
		}
		if err != nil {
			failed = fmt.Errorf("write batch: %w", err)
			stopPolling()
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = cl.CommitRecords(ctx, b.records...)
		cancel()
		if err != nil {
			failed = fmt.Errorf("commit: %w", err)
			stopPolling()
			continue
		}
		total.messages += len(b.records)
		total.inserted += b.stats.inserted
		total.duplicates += b.stats.duplicates
		total.deadLetters += b.stats.deadLetters
		total.rollbacks += b.stats.rollbacks
		if len(b.records) > b.stats.deadLetters {
			total.batches++
		}
	}
	return failed
}
