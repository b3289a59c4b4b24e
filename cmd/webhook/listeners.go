package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/handlers"
)

// Listening is where a started service listens.
type Listening struct {
	Public net.Addr // WEBHOOK_ADDR: the marketplace routes (and every route without OPS_ADDR)
	Ops    net.Addr // OPS_ADDR: the ops routes; nil without it
}

type listeningKey struct{}

// withOnListening returns ctx carrying fn, which serveAndDrain calls once,
// when every listener is bound and before it serves: tests (and embedders)
// learn the addresses from it instead of reading a log line.
func withOnListening(ctx context.Context, fn func(Listening)) context.Context {
	return context.WithValue(ctx, listeningKey{}, fn)
}

func onListening(ctx context.Context) func(Listening) {
	if fn, ok := ctx.Value(listeningKey{}).(func(Listening)); ok {
		return fn
	}
	return func(Listening) {}
}

// listener is one bound http.Server.
type listener struct {
	name string // the setting of its address, for errors and logs
	srv  *http.Server
	ln   net.Listener
}

// listeners are the service's servers: one on WEBHOOK_ADDR with every
// route, or, with OPS_ADDR, the marketplace routes there and the ops
// routes on OPS_ADDR; and the count of their handlers still running.
type listeners struct {
	servers  []listener
	inFlight *inFlight
}

// listen binds the service's listeners for hc's routes.
func listen(cfg *config, hc handlers.Config, log *zap.Logger) (listeners, error) {
	ls := listeners{inFlight: newInFlight()}
	if cfg.OpsAddr == "" {
		l, err := bind("WEBHOOK_ADDR", cfg.Addr, ls.inFlight.wrap(handlers.New(hc)), cfg, log)
		if err != nil {
			return listeners{}, err
		}
		ls.servers = []listener{l}
		return ls, nil
	}
	public, ops := handlers.Split(hc)
	pl, err := bind("WEBHOOK_ADDR", cfg.Addr, ls.inFlight.wrap(public), cfg, log)
	if err != nil {
		return listeners{}, err
	}
	ol, err := bind("OPS_ADDR", cfg.OpsAddr, ls.inFlight.wrap(ops), cfg, log)
	if err != nil {
		_ = pl.ln.Close()
		return listeners{}, err
	}
	ls.servers = []listener{pl, ol}
	return ls, nil
}

// handlerLimit is the longest a request's handler runs: PROCESS_TIMEOUT
// bounds a delivery's work, and the store calls after it have their own
// budget, well within the margin.
func handlerLimit(cfg *config) time.Duration { return cfg.ProcessTimeout + 15*time.Second }

func bind(name, addr string, h http.Handler, cfg *config, log *zap.Logger) (listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listener{}, &configError{msg: fmt.Sprintf("%s: cannot listen on %q: %v", name, addr, err)}
	}
	return listener{name: name, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second, // a backstop: the extension URL cuts bodies at 2 s itself
		WriteTimeout:      handlerLimit(cfg),
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    handlers.ServerMaxHeaderBytes, // above what the handler answers 431 to, in JSON
		ErrorLog:          zap.NewStdLog(log.Named("http")),
		// Requests do not inherit ctx: the signal must not cancel their work.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}}, nil
}

// addrs are the bound addresses.
func (ls listeners) addrs() Listening {
	var a Listening
	for _, l := range ls.servers {
		if l.name == "OPS_ADDR" {
			a.Ops = l.ln.Addr()
		} else {
			a.Public = l.ln.Addr()
		}
	}
	return a
}

// logFields say where the service listens, for the start line.
func (a Listening) logFields() []zap.Field {
	f := []zap.Field{zap.String("addr", a.Public.String())}
	if a.Ops != nil {
		f = append(f, zap.String("ops_addr", a.Ops.String()))
	}
	return f
}

// serveUntil serves every listener until ctx ends (nil) or one of them
// fails (its error). The caller stops them: shutdown or close, then wait.
func (ls listeners) serveUntil(ctx context.Context) error {
	errc := make(chan error, len(ls.servers))
	for _, l := range ls.servers {
		go func() {
			if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving %s: %w", l.name, err)
			}
		}()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}

// shutdown stops every listener at once: each stops accepting and waits
// for its requests within timeout; past it, the connections left are
// closed (srv.Close), cutting their requests, and the error says so. A cut
// request's handler may still be running: see wait.
func (ls listeners) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errs := make([]error, len(ls.servers))
	var wg sync.WaitGroup
	for i, l := range ls.servers {
		wg.Go(func() {
			if err := l.srv.Shutdown(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", l.name, err)
				_ = l.srv.Close()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// close closes every listener and its connections at once.
func (ls listeners) close() {
	for _, l := range ls.servers {
		_ = l.srv.Close()
	}
}

// wait returns once every handler has returned, at most limit after it is
// called; the listeners must be stopped (shutdown or close) before. A
// request cut by srv.Close loses its connection, not its handler, which
// runs on to its own deadline: what it uses (the store, the clients) must
// stay open until then.
func (ls listeners) wait(limit time.Duration) error {
	return ls.inFlight.wait(limit)
}

// inFlight counts the handlers running, so that the drain knows when the
// last one has returned. Once the drain waits, no new handler starts: a
// request read just before srv.Close closed its connection is answered
// 503 on that dead connection instead.
type inFlight struct {
	mu       sync.Mutex
	n        int
	draining bool
	idle     chan struct{} // closed when draining and n is 0
}

func newInFlight() *inFlight { return &inFlight{idle: make(chan struct{})} }

// wrap counts h's calls: each from before it starts until it returns.
func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.enter() {
			w.Header().Set("Connection", "close")
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		defer f.leave() // also when h panics: net/http recovers above us
		h.ServeHTTP(w, r)
	})
}

func (f *inFlight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.draining {
		return false
	}
	f.n++
	return true
}

func (f *inFlight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 && f.draining {
		close(f.idle)
	}
}

// wait stops new handlers from starting and waits until the running ones
// have returned, at most limit.
func (f *inFlight) wait(limit time.Duration) error {
	f.mu.Lock()
	if !f.draining {
		f.draining = true
		if f.n == 0 {
			close(f.idle)
		}
	}
	f.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-f.idle:
		return nil
	case <-t.C:
		f.mu.Lock()
		defer f.mu.Unlock()
		return fmt.Errorf("%d request(s) still running %s after the listeners stopped", f.n, limit)
	}
}
