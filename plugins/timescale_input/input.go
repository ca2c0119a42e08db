package timescaleinput

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/cliconn"
	"github.com/qicore/qiflow/internal/history"
	"github.com/qicore/qiflow/internal/result"
)

// checkpointTimeout bounds one checkpoint save.
const checkpointTimeout = 10 * time.Second

// inputConfig is the parsed configuration.
type inputConfig struct {
	dsn          string
	rng          history.Range
	tail         bool
	pollInterval time.Duration
	settle       time.Duration
	checkpoint   string
}

func newInputFromConfig(conf *service.ParsedConfig, mgr *service.Resources) (*input, error) {
	var c inputConfig
	var err error
	if c.dsn, err = conf.FieldString(fieldDSN); err != nil {
		return nil, err
	}
	if c.rng.Table, err = conf.FieldString(fieldTable); err != nil {
		return nil, err
	}
	if c.rng.Columns, err = conf.FieldStringList(fieldColumns); err != nil {
		return nil, err
	}
	if c.rng.TimeColumn, err = conf.FieldString(fieldTimeColumn); err != nil {
		return nil, err
	}
	if c.rng.KeyColumns, err = conf.FieldStringList(fieldKeyColumns); err != nil {
		return nil, err
	}
	for field, dst := range map[string]*time.Time{fieldFrom: &c.rng.From, fieldTo: &c.rng.To} {
		s, err := conf.FieldString(field)
		if err != nil {
			return nil, err
		}
		if s == "" {
			continue
		}
		if *dst, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
	}
	match, err := conf.FieldStringMap(fieldMatch)
	if err != nil {
		return nil, err
	}
	for col, v := range match {
		c.rng.Match = append(c.rng.Match, history.Match{Column: col, Value: v})
	}
	if c.rng.Where, err = conf.FieldString(fieldWhere); err != nil {
		return nil, err
	}
	args, err := conf.FieldAnyList(fieldArgs)
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		v, err := a.FieldAny()
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", fieldArgs, i, err)
		}
		c.rng.Args = append(c.rng.Args, v)
	}
	mode, err := conf.FieldString(fieldMode)
	if err != nil {
		return nil, err
	}
	if mode != modeRange && mode != modeTail {
		return nil, fmt.Errorf("%s: unknown mode %q", fieldMode, mode)
	}
	c.tail = mode == modeTail
	if c.rng.PageSize, err = conf.FieldInt(fieldPageSize); err != nil {
		return nil, err
	}
	if c.rng.PageSize < 1 {
		return nil, fmt.Errorf("%s must be at least 1", fieldPageSize)
	}
	if c.pollInterval, err = conf.FieldDuration(fieldPollInterval); err != nil {
		return nil, err
	}
	if c.settle, err = conf.FieldDuration(fieldSettle); err != nil {
		return nil, err
	}
	if c.pollInterval <= 0 || c.settle < 0 {
		return nil, fmt.Errorf("%s must be positive and %s not negative", fieldPollInterval, fieldSettle)
	}
	if c.checkpoint, err = conf.FieldString(fieldCheckpoint); err != nil {
		return nil, err
	}
	return &input{conf: c, log: mgr.Logger()}, nil
}

// input is the timescale input.
//
// ReadBatch runs on one goroutine and owns reader; the ack functions run on
// others and touch only the acknowledgement window, under mu.
type input struct {
	conf inputConfig
	log  *service.Logger

	pool   *pgxpool.Pool
	cps    *history.Checkpoints
	reader *history.Reader
	// caughtUp is set when a tail's last page was empty: the next read
	// waits for the poll interval first.
	caughtUp bool

	mu sync.Mutex
	// window holds the batches handed out and not yet part of the
	// acknowledged prefix, oldest first.
	window []*pendingBatch
	// emitted counts the rows of the acknowledged prefix, for the
	// checkpoint.
	emitted int64
}

// pendingBatch is one batch whose acknowledgement is awaited.
type pendingBatch struct {
	end   history.Position
	rows  int64
	acked bool
}

// Connect opens the pool, loads the checkpoint and prepares the read.
func (in *input) Connect(ctx context.Context) error {
	if in.reader != nil {
		return nil
	}
	pool, err := cliconn.Database(ctx, in.conf.dsn)
	if err != nil {
		return result.Classify(err)
	}
	rng := in.conf.rng
	if !in.conf.tail && rng.To.IsZero() {
		rng.To = time.Now()
	}
	if in.conf.checkpoint != "" {
		if in.cps, err = history.OpenCheckpoints(ctx, pool); err != nil {
			pool.Close()
			return result.Classify(err)
		}
		cp, err := in.cps.Load(ctx, in.conf.checkpoint)
		if err != nil {
			pool.Close()
			return result.Classify(err)
		}
		if cp != nil {
			rng.After = &cp.Position
			in.emitted = cp.Rows
			in.log.Infof("Resuming %s from checkpoint %q after %d rows (%s)", rng.Table, in.conf.checkpoint, cp.Rows, cp.Position.Time.Format(time.RFC3339Nano))
		}
	}
	var rd *history.Reader
	if in.conf.tail {
		rd, err = history.Follow(ctx, pool, rng, in.conf.settle)
	} else {
		rd, err = history.NewReader(ctx, pool, rng)
	}
	if err != nil {
		pool.Close()
		return result.Classify(err)
	}
	in.pool, in.reader = pool, rd
	in.log.Infof("Reading %s by (%s, %v)", rng.Table, rd.TimeColumn(), rd.KeyColumns())
	return nil
}

// ReadBatch returns the next page as a batch.
func (in *input) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	if in.reader == nil {
		return nil, nil, service.ErrNotConnected
	}
	for {
		if in.caughtUp {
			select {
			case <-time.After(in.conf.pollInterval):
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
		}
		page, err := in.reader.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil, nil, service.ErrEndOfInput
		}
		if err != nil {
			return nil, nil, result.Classify(err)
		}
		in.caughtUp = len(page) == 0
		if len(page) == 0 {
			continue
		}
		return in.batch(page)
	}
}

func (in *input) batch(page []history.Row) (service.MessageBatch, service.AckFunc, error) {
	batch := make(service.MessageBatch, len(page))
	table := in.conf.rng.Table
	var at time.Time
	var atText string
	for i := range page {
		// The page's buffer is not reused: the messages may keep it.
		m := service.NewMessage(page[i].Message)
		m.MetaSetMut(MetaTable, table)
		if i == 0 || !page[i].Time.Equal(at) { // rows of one time come together
			at, atText = page[i].Time, page[i].Time.Format(time.RFC3339Nano)
		}
		m.MetaSetMut(MetaTime, atText)
		batch[i] = m
	}
	pb := &pendingBatch{end: page[len(page)-1].Position(), rows: int64(len(page))}
	in.mu.Lock()
	in.window = append(in.window, pb)
	in.mu.Unlock()
	return batch, func(ctx context.Context, err error) error {
		if err != nil {
			// AutoRetryNacksBatched redelivers it; only success is final.
			return nil
		}
		return in.ack(ctx, pb)
	}, nil
}

// ack marks pb acknowledged and saves the end of the acknowledged prefix.
// The save happens under mu, so that checkpoints are written in order.
func (in *input) ack(ctx context.Context, pb *pendingBatch) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	pb.acked = true
	var last *history.Position
	for len(in.window) > 0 && in.window[0].acked {
		last = &in.window[0].end
		in.emitted += in.window[0].rows
		in.window = in.window[1:]
	}
	if last == nil || in.cps == nil {
		return nil
	}
	// An ack may come while the stream stops: the save must still happen.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkpointTimeout)
	defer cancel()
	if err := in.cps.Save(ctx, in.conf.checkpoint, in.conf.rng.Table, *last, in.emitted); err != nil {
		in.log.Errorf("Checkpoint %q: %v", in.conf.checkpoint, err)
		return err
	}
	return nil
}

// Close closes the pool.
func (in *input) Close(context.Context) error {
	if in.pool != nil {
		in.pool.Close()
	}
	return nil
}
