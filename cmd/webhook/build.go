package main

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/outside"
	"github.com/banking-marketplace/webhook/internal/store"
)

// openRedis opens the store of cfg's Redis settings, saying in one line
// what went wrong: Redis refusing the password in REDIS_URL (exit 1: the
// settings parse, Redis says no), or Redis not answering (exit 1).
func openRedis(ctx context.Context, cfg *config, log *zap.Logger, onError func(string)) (*store.Redis, error) {
	o := cfg.storeOptions()
	o.Logger, o.OnError = log, onError
	db, err := store.Open(ctx, o)
	var auth *store.AuthError
	switch {
	case errors.As(err, &auth):
		return nil, &outside.Refusal{
			Advice: outside.Advice{Settings: "REDIS_URL",
				Fix: "the password in REDIS_URL is wrong or missing; set redis://:PASSWORD@host:port (redis://USER:PASSWORD@host:port for an ACL user)"},
			What: "Redis refused the credentials: " + auth.Problem,
			Err:  auth.Unwrap(),
		}
	case errors.Is(err, events.ErrUnavailable):
		return nil, fmt.Errorf("REDIS_URL: cannot reach Redis; check the address and that Redis is up: %w", err)
	case err != nil: // loadConfig checked the options: not expected
		return nil, &configError{msg: "REDIS_URL: " + err.Error()}
	}
	return db, nil
}
