// Package settler is the background worker that keeps the service's
// replies true after they are sent: it takes the subscriptions that are
// due on the settle queue (kept in Redis, shared by every replica), and
// settles each under its subscription's lock, so that one replica works on
// a subscription at a time and a replica that dies leaves its work to the
// others. The settle pass itself, and when the next one is due, is the
// provisioning use case's (provisioning.Service.Settle).
package settler

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/backoff"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

// Queue is the settle queue.
type Queue interface {
	// TakeDue returns up to limit subscriptions due at now and pushes each
	// lease ahead, so that no other replica takes it meanwhile.
	TakeDue(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]string, error)
	// Queued returns up to limit queued subscriptions, due or not.
	Queued(ctx context.Context, limit int) ([]string, error)
	// SettleStats is how many subscriptions are unsettled and since when
	// the oldest one is.
	SettleStats(ctx context.Context) (n int64, oldest time.Time, err error)
}

// Settler settles one subscription now.
type Settler interface {
	Settle(ctx context.Context, subscription string) (provisioning.Report, error)
}

// Observer is told how many subscriptions are unsettled, for metrics.
type Observer interface {
	Unsettled(n int64, oldest time.Duration)
	// PendingResults is how many AppDirect results wait to be posted.
	PendingResults(n int64)
}

// Config tunes the worker. Zero values take the defaults.
type Config struct {
	Interval time.Duration // how often the queue is looked at; 1s
	Batch    int           // subscriptions taken at once; 16
	Pass     time.Duration // the deadline of one subscription's pass (PROCESS_TIMEOUT); 4s
	Lease    time.Duration // how long a taken entry is left alone; longer than Pass; Pass+Pass/4+1s
}

// Results is the queue of AppDirect's asynchronous results: results to
// post, each worked by Answer (the inbox's AnswerLater), which processes
// the event when it must and posts its result until AppDirect accepts it.
type Results struct {
	TakeDue func(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]string, error)
	Answer  func(ctx context.Context, token string) error
	// Pending counts the results not posted yet, for the gauge.
	Pending func(ctx context.Context) (int64, error)
}

// Worker works the settle queue.
type Worker struct {
	queue   Queue
	settler Settler
	results *Results
	cfg     Config
	log     *zap.Logger
	obs     Observer
	now     func() time.Time
}

// WithResults makes the worker also post AppDirect's asynchronous results.
func (w *Worker) WithResults(r Results) *Worker {
	w.results = &r
	return w
}

// New returns a worker; obs may be nil.
func New(q Queue, s Settler, cfg Config, log *zap.Logger, obs Observer) *Worker {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 16
	}
	if cfg.Pass <= 0 {
		cfg.Pass = 4 * time.Second
	}
	if cfg.Lease <= cfg.Pass {
		cfg.Lease = cfg.Pass + cfg.Pass/4 + time.Second
	}
	return &Worker{queue: q, settler: s, cfg: cfg, log: log, obs: obs, now: time.Now}
}

// Run works the queue until ctx ends. A pass under way when it ends is
// finished (its outside calls are not cut half-way), then Run returns.
func (w *Worker) Run(ctx context.Context) {
	for {
		w.tick(ctx)
		if backoff.Sleep(ctx, backoff.Half(2*w.cfg.Interval)) != nil {
			return
		}
	}
}

// tick settles what is due now and updates the gauges.
func (w *Worker) tick(ctx context.Context) {
	// Each entry taken is left alone until the whole batch could have been
	// worked, one pass after another.
	subs, err := w.queue.TakeDue(ctx, w.now(), w.cfg.Batch, time.Duration(w.cfg.Batch)*w.cfg.Pass+w.cfg.Lease)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("reading the settle queue failed", zap.Error(err))
		}
		return
	}
	for _, sub := range subs {
		w.settle(ctx, sub)
	}
	w.answer(ctx)
	if w.obs != nil {
		if n, oldest, err := w.queue.SettleStats(ctx); err == nil {
			age := time.Duration(0)
			if !oldest.IsZero() {
				age = w.now().Sub(oldest)
			}
			w.obs.Unsettled(n, age)
		}
		if w.results != nil && w.results.Pending != nil {
			if n, err := w.results.Pending(ctx); err == nil {
				w.obs.PendingResults(n)
			}
		}
	}
}

// answer works the due results.
func (w *Worker) answer(ctx context.Context) {
	if w.results == nil {
		return
	}
	tokens, err := w.results.TakeDue(ctx, w.now(), w.cfg.Batch, time.Duration(w.cfg.Batch)*w.cfg.Pass+w.cfg.Lease)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("reading the results queue failed", zap.Error(err))
		}
		return
	}
	for _, job := range tokens { // a job's key: its token and marketplace (inbox.JobID)
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Pass)
		if err := w.results.Answer(pctx, job); err != nil && !errors.Is(err, events.ErrBusy) {
			w.log.Warn("answering an event later failed", zap.String("result_job", job), zap.Error(err))
		}
		cancel()
	}
}

// settle runs one pass on sub, detached from ctx's end but within Pass.
func (w *Worker) settle(ctx context.Context, sub string) (provisioning.Report, error) {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.Pass)
	defer cancel()
	log := w.log.With(zap.String("subscription", sub))
	rep, err := w.settler.Settle(pctx, sub)
	switch {
	case errors.Is(err, events.ErrBusy):
		log.Debug("subscription busy; settled later")
	case err != nil:
		log.Warn("settling failed", zap.Error(err))
	case rep.Missing:
		log.Warn("a queued subscription has no account; dropped from the queue")
	case rep.Settled:
		log.Info("subscription settled", zap.String("intent", string(rep.Intent)), zap.Bool("abandoned", rep.Abandoned))
	default:
		log.Info("subscription not settled yet", zap.String("intent", string(rep.Intent)),
			zap.String("waiting", rep.Waiting), zap.Time("next", rep.Due))
	}
	return rep, err
}

// Result is one subscription of a settle pass run by hand.
type Result struct {
	Report provisioning.Report
	Err    error
}

// Once runs one settle pass now on every queued subscription, due or not
// (or only on subscription, when not empty), for `webhook settle`.
func (w *Worker) Once(ctx context.Context, subscription string) ([]Result, error) {
	subs := []string{subscription}
	if subscription == "" {
		var err error
		if subs, err = w.queue.Queued(ctx, 10000); err != nil {
			return nil, err
		}
	}
	out := make([]Result, 0, len(subs))
	for _, sub := range subs {
		rep, err := w.settle(ctx, sub)
		rep.Subscription = sub
		out = append(out, Result{Report: rep, Err: err})
	}
	return out, nil
}
