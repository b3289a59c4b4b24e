package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/banking-marketplace/webhook/internal/events"
)

// The operator console's sessions, kept in Redis so that every replica
// knows them and a restart signs nobody out. The key is the hex SHA-256
// of the session cookie's id (the console hashes it): what Redis holds
// cannot be used as a cookie. The value is the console's, opaque here.

// PutSession stores a session under key for ttl, replacing what was there.
func (r *Redis) PutSession(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if key == "" || ttl <= 0 {
		return fmt.Errorf("store: put session: need a key and a positive ttl")
	}
	if err := r.client.Set(ctx, r.keys.session(key), value, ttl).Err(); err != nil {
		return unavailable("put session", err)
	}
	return nil
}

// RefreshSession stores a session under key for ttl only while one is
// there (SET XX): events.ErrNotFound when none is, so that a request that
// outlived its session's sign-out never brings it back.
func (r *Redis) RefreshSession(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if key == "" || ttl <= 0 {
		return fmt.Errorf("store: refresh session: need a key and a positive ttl")
	}
	err := r.client.SetArgs(ctx, r.keys.session(key), value, redis.SetArgs{Mode: "XX", TTL: ttl}).Err()
	switch {
	case errors.Is(err, redis.Nil):
		return fmt.Errorf("session: %w", events.ErrNotFound)
	case err != nil:
		return unavailable("refresh session", err)
	}
	return nil
}

// GetSession reads the session under key; events.ErrNotFound when there
// is none (never stored, expired or deleted).
func (r *Redis) GetSession(ctx context.Context, key string) ([]byte, error) {
	b, err := r.client.Get(ctx, r.keys.session(key)).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		return nil, fmt.Errorf("session: %w", events.ErrNotFound)
	case err != nil:
		return nil, unavailable("get session", err)
	}
	return b, nil
}

// DeleteSession forgets the session under key; a missing one is no error.
func (r *Redis) DeleteSession(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.keys.session(key)).Err(); err != nil {
		return unavailable("delete session", err)
	}
	return nil
}
