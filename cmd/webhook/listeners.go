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

// withOnListening returns ctx carrying fn, which serve calls once, when
// every listener is bound and before it serves: tests (and embedders) learn
// the addresses from it instead of reading a log line.
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
// routes on OPS_ADDR.
type listeners []listener

// listen binds the service's listeners for hc's routes.
func listen(cfg *config, hc handlers.Config, log *zap.Logger) (listeners, error) {
	if cfg.OpsAddr == "" {
		l, err := bind("WEBHOOK_ADDR", cfg.Addr, handlers.New(hc), cfg, log)
		if err != nil {
			return nil, err
		}
		return listeners{l}, nil
	}
	public, ops := handlers.Split(hc)
	pl, err := bind("WEBHOOK_ADDR", cfg.Addr, public, cfg, log)
	if err != nil {
		return nil, err
	}
	ol, err := bind("OPS_ADDR", cfg.OpsAddr, ops, cfg, log)
	if err != nil {
		_ = pl.ln.Close()
		return nil, err
	}
	return listeners{pl, ol}, nil
}

func bind(name, addr string, h http.Handler, cfg *config, log *zap.Logger) (listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return listener{}, &configError{msg: fmt.Sprintf("%s: cannot listen on %q: %v", name, addr, err)}
	}
	return listener{name: name, ln: ln, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second, // a backstop: the extension URL cuts bodies at 2 s itself
		WriteTimeout:      cfg.ProcessTimeout + 15*time.Second,
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
	for _, l := range ls {
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
// fails (its error; the others are closed). The caller shuts them down.
func (ls listeners) serveUntil(ctx context.Context) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() {
			if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serving %s: %w", l.name, err)
			}
		}()
	}
	select {
	case err := <-errc:
		ls.close()
		return err
	case <-ctx.Done():
		return nil
	}
}

// shutdown stops every listener at once: each stops accepting and waits
// for its requests within timeout; past it, the connections left are
// closed (srv.Close), cutting their requests, and the error says so.
func (ls listeners) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	errs := make([]error, len(ls))
	var wg sync.WaitGroup
	for i, l := range ls {
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

func (ls listeners) close() {
	for _, l := range ls {
		_ = l.srv.Close()
	}
}
