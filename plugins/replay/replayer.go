package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/qicore/qiflow/internal/history"
)

// checkpointEvery is how often a running replay saves its position: a crash
// repeats at most this much of the range, plus what was in flight.
const checkpointEvery = time.Second

// maxBufferedRecords is how many records the producer holds before
// Produce blocks: several pages, so that reading the next page overlaps
// the acknowledgements of the last (franz-go's default of 10,000 is one
// page, and halves the rate).
const maxBufferedRecords = 10 * history.DefaultPageSize

// ProducerOptions are the franz-go options a Job's client needs, besides
// the connection: the Placer's partition is the record's, enough buffering
// that reads and produces overlap, and lz4, the codec of the shipped topics
// and of the redpanda output's default, so that the broker need not
// recompress.
func ProducerOptions() []kgo.Opt {
	return []kgo.Opt{
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.MaxBufferedRecords(maxBufferedRecords),
	}
}

// Placer decides the topic, key and partition of each message; the
// exchange_router's Placer, so that a replayed series lands where the
// router puts it live.
type Placer interface {
	Place(msg []byte) (topic, key string, partition int32, out []byte, err error)
}

// Job is one replay: a range of a table into a topic.
type Job struct {
	// DB is where the range is read and the checkpoint kept. Pages are
	// read while the checkpoint is saved, so it must allow concurrent use:
	// a *pgxpool.Pool.
	DB history.Querier
	// Client produces, made with ProducerOptions; its idempotent producer
	// (franz-go's default) keeps each partition in the order produced.
	Client *kgo.Client
	Range  history.Range
	Placer Placer
	// Checkpoint names the saved position; empty means none is kept.
	Checkpoint string
	// Progress, when set, is called after each page with the rows
	// produced and acknowledged so far.
	Progress func(done int64)
}

// Summary is what a replay did.
type Summary struct {
	// Rows is the rows produced and acknowledged by this run.
	Rows int64 `json:"rows"`
	// ResumedAfter is the rows an earlier, interrupted run had replayed;
	// zero for a fresh start.
	ResumedAfter int64 `json:"resumedAfter"`
	// Complete is true when the whole range was replayed.
	Complete bool          `json:"complete"`
	Elapsed  time.Duration `json:"-"`
}

// inFlightPage is a page whose records are produced but not all
// acknowledged yet.
type inFlightPage struct {
	end     history.Position
	rows    int64
	pending atomic.Int64
}

// Run replays job.Range. It reads pages ahead on one goroutine, places and
// produces each row on the calling one, and saves the checkpoint, at most
// every checkpointEvery, after the last page of which every record was
// acknowledged. When ctx ends it stops reading, waits for what it produced,
// saves the checkpoint and returns ctx's error: running the same job again
// resumes with the row after the last one acknowledged. A complete replay
// deletes its checkpoint, so that the same job run again replays again.
func Run(ctx context.Context, job Job) (Summary, error) {
	started := time.Now()
	var sum Summary
	var cps *history.Checkpoints
	if job.Checkpoint != "" {
		var err error
		if cps, err = history.OpenCheckpoints(ctx, job.DB); err != nil {
			return sum, err
		}
		cp, err := cps.Load(ctx, job.Checkpoint)
		if err != nil {
			return sum, err
		}
		if cp != nil {
			job.Range.After = &cp.Position
			sum.ResumedAfter = cp.Rows
		}
	}
	rd, err := history.NewReader(ctx, job.DB, job.Range)
	if err != nil {
		return sum, err
	}

	// Pages are read ahead while the previous one is produced. The reader
	// goroutine owns rd; it stops when ctx (or stopRead) ends.
	readCtx, stopRead := context.WithCancel(ctx)
	defer stopRead()
	pages := make(chan []history.Row, 2)
	var readErr error
	var readDone sync.WaitGroup
	readDone.Add(1)
	go func() {
		defer readDone.Done()
		defer close(pages)
		for {
			page, err := rd.Next(readCtx)
			if err != nil {
				if !errors.Is(err, io.EOF) && readCtx.Err() == nil {
					readErr = err
				}
				return
			}
			if len(page) == 0 {
				continue
			}
			select {
			case pages <- page:
			case <-readCtx.Done():
				return
			}
		}
	}()

	// The window of produced pages, oldest first. Only this goroutine
	// touches it; the promises only decrement pending and record the
	// first produce error.
	var (
		window   []*inFlightPage
		done     int64
		last     *history.Position
		saved    = time.Now()
		firstErr atomic.Pointer[error]
	)
	settle := func() {
		for len(window) > 0 && window[0].pending.Load() == 0 {
			done += window[0].rows
			last = &window[0].end
			window = window[1:]
		}
	}
	save := func(saveCtx context.Context) error {
		if cps == nil || last == nil {
			return nil
		}
		saved = time.Now()
		return cps.Save(saveCtx, job.Checkpoint, job.Range.Table, *last, sum.ResumedAfter+done)
	}
	promise := func(p *inFlightPage) func(*kgo.Record, error) {
		return func(_ *kgo.Record, err error) {
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
			p.pending.Add(-1)
		}
	}

	// Records are produced without ctx: an interrupt stops the replay
	// between pages, and every record of a started page is delivered, so
	// that the checkpoint is exact and a resumed run repeats nothing.
	produceCtx := context.WithoutCancel(ctx)
	var produceErr error
	for page := range pages {
		if ctx.Err() != nil {
			break
		}
		if ep := firstErr.Load(); ep != nil {
			produceErr = *ep
			break
		}
		p := &inFlightPage{end: page[len(page)-1].Position(), rows: int64(len(page))}
		p.pending.Store(int64(len(page)))
		window = append(window, p)
		cb := promise(p)
		// One allocation of records and one of keys a page, not one each
		// a row.
		records := make([]kgo.Record, len(page))
		keys := make([]byte, 0, 24*len(page))
		for i := range page {
			topic, key, partition, msg, err := job.Placer.Place(page[i].Message)
			if err != nil {
				produceErr = fmt.Errorf("place the row of %s at %s: %w", job.Range.Table, page[i].Time.Format(time.RFC3339Nano), err)
				// The rest of the page is never produced: count it as
				// not acknowledged, for good.
				p.pending.Add(1)
				break
			}
			start := len(keys)
			keys = append(keys, key...)
			r := &records[i]
			r.Topic, r.Key, r.Value, r.Partition = topic, keys[start:len(keys):len(keys)], msg, partition
			job.Client.Produce(produceCtx, r, cb)
		}
		if produceErr != nil {
			break
		}
		settle()
		if job.Progress != nil {
			job.Progress(done)
		}
		if time.Since(saved) >= checkpointEvery {
			if err := save(ctx); err != nil {
				produceErr = err
				break
			}
		}
	}
	stopRead()
	for range pages { // let the reader goroutine finish
	}
	readDone.Wait()

	// Wait for everything produced, even when ctx has ended: the
	// checkpoint must not lag behind what is in the topic.
	flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := job.Client.Flush(flushCtx); err != nil {
		produceErr = errors.Join(produceErr, fmt.Errorf("flush: %w", err))
	}
	settle()
	if ep := firstErr.Load(); ep != nil && produceErr == nil {
		produceErr = fmt.Errorf("produce: %w", *ep)
	}
	sum.Rows, sum.Elapsed = done, time.Since(started)
	if job.Progress != nil {
		job.Progress(done)
	}
	switch {
	case produceErr != nil || readErr != nil:
		err := errors.Join(produceErr, readErr)
		return sum, errors.Join(err, save(flushCtx))
	case ctx.Err() != nil:
		return sum, errors.Join(ctx.Err(), save(flushCtx))
	}
	sum.Complete = true
	if cps != nil {
		return sum, cps.Delete(flushCtx, job.Checkpoint)
	}
	return sum, nil
}
