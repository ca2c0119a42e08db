package devcmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"

	_ "github.com/qicore/qiflow/plugins/exchange_router"
	_ "github.com/qicore/qiflow/plugins/market_data"
	_ "github.com/qicore/qiflow/plugins/redpanda"
	_ "github.com/qicore/qiflow/plugins/schema_registry"
	_ "github.com/qicore/qiflow/plugins/timescale_output"
)

const (
	// feedStopTimeout bounds stopping the feed; what it has not produced
	// by then is simply not produced.
	feedStopTimeout = 10 * time.Second
	// ingestStopTimeout bounds draining an ingest pipeline: writing and
	// committing what it has in flight takes well under a second at the
	// demo's rates.
	ingestStopTimeout = 10 * time.Second
	// catchUpTimeout bounds the wait, between stopping the feed and
	// draining the ingest pipelines, for the ingest pipelines to write and
	// commit what the feed produced last.
	catchUpTimeout = 5 * time.Second
)

// pipelines are the running feed and ingest streams.
type pipelines struct {
	feed   *service.Stream
	ingest []*service.Stream
	names  []string // of the ingest pipelines
	log    *slog.Logger
	// failed receives the error of a stream that stopped by itself.
	failed chan error
}

// startPipelines builds the feed and the three ingest pipelines of dir,
// with the variables of env overriding the process environment, and runs
// them: ingest first, so that it is consuming when the feed starts. With
// --format avro, registryURL is the schema registry of the Avro prices.
func startPipelines(dir string, o options, env map[string]string, registryURL string) (*pipelines, error) {
	lookup := func(name string) (string, bool) {
		if v, ok := env[name]; ok {
			return v, true
		}
		return os.LookupEnv(name)
	}
	build := func(name, conf string, fields ...any) (*service.Stream, error) {
		path := filepath.Join(dir, name)
		if conf == "" {
			text, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("read pipeline: %w", err)
			}
			conf = string(text)
		}
		b := service.NewStreamBuilder()
		b.SetEnvVarLookupFunc(lookup)
		b.SetLogger(o.log.With("pipeline", name))
		if err := b.SetYAML(conf); err != nil {
			return nil, fmt.Errorf("pipeline %s: %w", path, err)
		}
		if len(fields) > 0 {
			if err := b.SetFields(fields...); err != nil {
				return nil, fmt.Errorf("pipeline %s: %w", path, err)
			}
		}
		s, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build pipeline %s: %w", path, err)
		}
		return s, nil
	}
	p := &pipelines{failed: make(chan error, len(o.ingest)+1), log: o.log}
	for _, ip := range o.ingest {
		// The pipeline label tells the summary whose metrics are whose:
		// every stream of the process feeds one registry.
		fields := []any{"metrics.mapping", fmt.Sprintf("meta %s = %q", pipelineLabel, ip.name)}
		if ip.topic == avroPriceTopic {
			fields = append(fields, "output.timescale.schema_registry.url", registryURL)
		}
		s, err := build(ip.file, "", fields...)
		if err != nil {
			return nil, errors.Join(err, p.stop(nil))
		}
		p.ingest, p.names = append(p.ingest, s), append(p.names, ip.file)
		p.run(ip.file, s)
	}
	feedConf := ""
	if o.format == formatAvro {
		var err error
		if feedConf, err = avroFeed(dir, registryURL); err != nil {
			return nil, errors.Join(err, p.stop(nil))
		}
	}
	feed, err := build(feedFile, feedConf, "input.market_data.rate", strconv.Itoa(o.rate),
		"input.market_data.bad_share", o.badShare)
	if err != nil {
		return nil, errors.Join(err, p.stop(nil))
	}
	p.feed = feed
	p.run(feedFile, feed)
	return p, nil
}

// run runs s until it is stopped, reporting on failed if it stops by
// itself first. failed has room for every stream, so the goroutine ends
// even when nobody reads.
func (p *pipelines) run(name string, s *service.Stream) {
	go func() {
		// Run's context only aborts the wait; stop stops the stream.
		if err := s.Run(context.Background()); err != nil {
			p.failed <- fmt.Errorf("pipeline %s: %w", name, err)
			return
		}
		p.failed <- fmt.Errorf("pipeline %s stopped by itself", name)
	}()
}

// stop stops the feed, waits (at most catchUpTimeout) until caughtUp says
// the ingest pipelines have committed all it produced, then drains them, so
// that what was produced is written and committed. A nil caughtUp does not
// wait.
func (p *pipelines) stop(caughtUp func(context.Context) bool) error {
	var errs []error
	if p.feed != nil {
		if err := p.feed.StopWithin(feedStopTimeout); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", feedFile, err))
		}
	}
	if caughtUp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), catchUpTimeout)
		for !caughtUp(ctx) && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
		cancel()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, st := range p.ingest {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := st.StopWithin(ingestStopTimeout)
			if err == nil {
				return
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("stop %s: %w", p.names[i], err))
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
