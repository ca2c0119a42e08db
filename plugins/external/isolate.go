package external

import (
	"context"
	"errors"
	"fmt"
	"math/bits"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/result"
)

// isolation takes one batch through the plugin. Its first call runs beside
// other batches; if the process is lost during it, the batch runs alone
// (supervisor.isolating) from then on: it is sent once more to a fresh
// process, and if that is lost too, a batch of several messages is bisected
// (each half sent on its own, a lost half split again) until the messages
// that crash or hang the plugin stand alone. A single message lost twice is
// poison when the plugin has shown that it works, by answering another part
// of the batch, or, for a batch of one message, by having answered other
// batches on the process the message was first lost on: it fails alone with
// a BUSINESS error, for the dead-letter topic. Otherwise the plugin counts
// as broken, and the batch meets the restart budget as before.
type isolation struct {
	p       *processor
	batch   service.MessageBatch
	dropped []bool // aligned with batch: what the plugin dropped

	ledger ledger
	// worked: the plugin answered a part of the batch after the first loss.
	worked bool
	// firstAnsweredBefore: the process the batch was first lost on had
	// answered other batches.
	firstAnsweredBefore bool
	// halt is the error that ended the isolation (the plugin failed, the
	// pipeline stopped): the messages not yet settled get it.
	halt     error
	suspects []suspect
}

// suspect is a message lost twice on its own.
type suspect struct {
	index int
	lost  *lostCall
}

func (iso *isolation) run(ctx context.Context) {
	sup, n := iso.p.sup, len(iso.batch)
	sup.isolating.RLock()
	resp, err := sup.call(ctx, request(iso.batch), nil)
	sup.isolating.RUnlock()
	var lost *lostCall
	if !errors.As(err, &lost) {
		iso.p.settle(iso.batch, iso.dropped, resp, err)
		return
	}

	sup.isolating.Lock()
	defer sup.isolating.Unlock()
	iso.firstAnsweredBefore = lost.answeredBefore
	// A process that worked until this batch: its restarts are the batch's
	// doing. Bisection takes about 2 restarts per halving; the limit keeps a
	// plugin that crashes on everything from spinning.
	iso.ledger = ledger{exempt: lost.answeredBefore, limit: 2*bits.Len(uint(n)) + 4}
	if lost = iso.attempt(ctx, 0, n); lost != nil {
		if n == 1 {
			iso.suspects = append(iso.suspects, suspect{0, lost})
		} else {
			iso.bisect(ctx, 0, n)
		}
	}
	iso.judge()
}

// attempt sends batch[lo:hi] once and settles it, unless its process is
// lost: then it returns why, and the messages stay unsettled.
func (iso *isolation) attempt(ctx context.Context, lo, hi int) *lostCall {
	part := iso.batch[lo:hi]
	if iso.halt != nil {
		failAll(part, iso.halt)
		return nil
	}
	sup := iso.p.sup
	resp, err := sup.call(ctx, request(part), &iso.ledger)
	var lost *lostCall
	if errors.As(err, &lost) {
		return lost
	}
	if err == nil && !iso.worked {
		// The plugin works: the restarts so far were the batch's doing.
		iso.worked = true
		iso.ledger.exempt = true
		sup.refund(iso.ledger.counted)
		iso.ledger.counted = nil
	}
	if err != nil && result.Classify(err).Code != "plugin_contract" {
		iso.halt = err
	}
	iso.p.settle(part, iso.dropped[lo:hi], resp, err)
	return nil
}

// bisect isolates the messages of batch[lo:hi], a part that was lost: it
// sends each half, then bisects each lost half, and sends a lost single
// message a second time.
func (iso *isolation) bisect(ctx context.Context, lo, hi int) {
	mid := lo + (hi-lo)/2
	var lostHalves [][2]int
	for _, h := range [][2]int{{lo, mid}, {mid, hi}} {
		if iso.attempt(ctx, h[0], h[1]) != nil {
			lostHalves = append(lostHalves, h)
		}
	}
	for _, h := range lostHalves {
		if h[1]-h[0] > 1 {
			iso.bisect(ctx, h[0], h[1])
		} else if lost := iso.attempt(ctx, h[0], h[1]); lost != nil {
			iso.suspects = append(iso.suspects, suspect{h[0], lost})
		}
	}
}

// judge settles the suspects: poison if the plugin has shown that it
// works, else the transient error of a plugin that crashes on everything.
func (iso *isolation) judge() {
	p := iso.p
	poison := iso.worked || (len(iso.batch) == 1 && iso.firstAnsweredBefore)
	for _, s := range iso.suspects {
		m := iso.batch[s.index]
		if iso.halt != nil {
			setError(m, iso.halt)
			continue
		}
		if !poison {
			setError(m, result.Wrap(result.System, "plugin_unavailable", s.lost,
				fmt.Sprintf("plugin %s was lost on every part of the batch", p.name)).AsTransient())
			continue
		}
		code, what := "plugin_crashed", "crashed"
		if s.lost.hung {
			code, what = "plugin_timeout", fmt.Sprintf("did not answer within the timeout of %v", p.sup.conf.timeout)
		}
		err := result.New(result.Business, code,
			fmt.Sprintf("plugin %s %s on this message twice, the second time alone on a fresh process", p.name, what)).With("plugin", p.name)
		p.sup.log.Errorf("Plugin %s %s on a message twice, alone on a fresh process; the message fails with BUSINESS %s", p.name, what, code)
		setError(m, err)
		p.metrics.messageErrors.Incr(1, p.name)
	}
}
