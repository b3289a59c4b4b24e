package main

import (
	"io"
	"os"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"

	"github.com/banking-marketplace/webhook/internal/store"
)

// newLogger logs to w in format (LOG_FORMAT): "json" lines, readable
// "console" lines, or "auto": console when w is a terminal, JSON otherwise
// (a log collector wants JSON; a developer reading a terminal does not).
func newLogger(w io.Writer, level zapcore.Level, format string) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	console := format == "console"
	if format == "auto" || format == "" {
		f, ok := w.(*os.File)
		console = ok && term.IsTerminal(int(f.Fd()))
	}
	encoder := zapcore.NewJSONEncoder(enc)
	if console {
		enc.EncodeLevel = zapcore.CapitalLevelEncoder
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			enc.EncodeLevel = zapcore.CapitalColorLevelEncoder // colours only where they render
		}
		encoder = zapcore.NewConsoleEncoder(enc)
	}
	return zap.New(zapcore.NewCore(encoder, zapcore.Lock(zapcore.AddSync(w)), level))
}

// goRedisLog is go-redis's logger, which is process-wide, so it is set
// once, to the first service's logger. While muted (a service is opening
// Redis at start) its lines are dropped: an unreachable Redis at start is
// reported once, as the error that stops the service, not also as
// go-redis's warning for every dial retry before it.
var goRedisLog struct {
	once  sync.Once
	muted atomic.Int32
}

// setGoRedisLogger sends go-redis's lines to log, once per process.
func setGoRedisLogger(log *zap.Logger) {
	goRedisLog.once.Do(func() {
		store.SetClientLogger(log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
			return mutableCore{c, &goRedisLog.muted}
		})))
	})
}

// muteGoRedis drops go-redis's log lines until unmute is called.
func muteGoRedis() (unmute func()) {
	goRedisLog.muted.Add(1)
	var once sync.Once
	return func() { once.Do(func() { goRedisLog.muted.Add(-1) }) }
}

// mutableCore drops every entry while *muted is above zero.
type mutableCore struct {
	zapcore.Core
	muted *atomic.Int32
}

func (c mutableCore) Enabled(l zapcore.Level) bool {
	return c.muted.Load() == 0 && c.Core.Enabled(l)
}

func (c mutableCore) With(fields []zapcore.Field) zapcore.Core {
	return mutableCore{c.Core.With(fields), c.muted}
}

func (c mutableCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.muted.Load() > 0 {
		return ce
	}
	return c.Core.Check(e, ce)
}
