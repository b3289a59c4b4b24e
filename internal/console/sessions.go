package console

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Session is one signed-in operator, kept on the server; the browser holds
// only a random id in a cookie.
type Session struct {
	// Operator names who signed in: the label of the token used (see
	// TokenLabel), never the token.
	Operator string `json:"operator"`
	// CSRF is the form token every POST of this session must carry.
	CSRF    string    `json:"csrf"`
	Created time.Time `json:"created"`
	Seen    time.Time `json:"seen"` // the last request
	// Flash is a message for the next page shown (an action's result).
	Flash *Flash `json:"flash,omitempty"`
}

// Flash is the result of an action, shown once on the page after it.
type Flash struct {
	Class string `json:"class"` // ok, warn, bad
	Text  string `json:"text"`
}

// ErrNoSession is Sessions.Get's answer for a key it does not hold (never
// stored, expired or deleted).
var ErrNoSession = errors.New("no such session")

// Sessions keeps the console's sessions. Keys are the hex SHA-256 of the
// cookie's id, so that what the store holds cannot be used as a cookie. A
// store shared by the replicas (Redis) lets a session survive a restart and
// reach any replica; MemorySessions serves one replica.
type Sessions interface {
	// Put stores s under key for ttl, replacing what was there: a sign-in.
	Put(ctx context.Context, key string, s Session, ttl time.Duration) error
	// Refresh stores s under key for ttl only while a session is there,
	// and returns ErrNoSession otherwise: a request that outlived its
	// session (signed out, expired) never brings it back.
	Refresh(ctx context.Context, key string, s Session, ttl time.Duration) error
	// Get returns the session under key, or ErrNoSession.
	Get(ctx context.Context, key string) (Session, error)
	// Delete forgets key; deleting a missing key is no error.
	Delete(ctx context.Context, key string) error
}

// MemorySessions keeps sessions in this process: enough for one replica,
// lost on restart (the operators sign in again).
type MemorySessions struct {
	now func() time.Time
	max int

	mu sync.Mutex
	m  map[string]memorySession
}

type memorySession struct {
	s       Session
	expires time.Time
}

// NewMemorySessions returns an empty store that holds at most max sessions
// (0: 10000): past it, signing in is refused until some expire, so that a
// flood of sign-ins cannot take the memory. now is the clock (nil:
// time.Now).
func NewMemorySessions(max int, now func() time.Time) *MemorySessions {
	if max <= 0 {
		max = 10000
	}
	if now == nil {
		now = time.Now
	}
	return &MemorySessions{now: now, max: max, m: make(map[string]memorySession)}
}

// ErrTooManySessions is MemorySessions.Put's answer when it is full.
var ErrTooManySessions = errors.New("too many console sessions; sign out unused ones or wait for them to expire")

// Put implements Sessions.
func (m *MemorySessions) Put(_ context.Context, key string, s Session, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if _, ok := m.m[key]; !ok && len(m.m) >= m.max {
		for k, v := range m.m {
			if !now.Before(v.expires) {
				delete(m.m, k)
			}
		}
		if len(m.m) >= m.max {
			return ErrTooManySessions
		}
	}
	m.m[key] = memorySession{s: s, expires: now.Add(ttl)}
	return nil
}

// Refresh implements Sessions.
func (m *MemorySessions) Refresh(_ context.Context, key string, s Session, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if v, ok := m.m[key]; !ok || !now.Before(v.expires) {
		delete(m.m, key)
		return ErrNoSession
	}
	m.m[key] = memorySession{s: s, expires: now.Add(ttl)}
	return nil
}

// Get implements Sessions.
func (m *MemorySessions) Get(_ context.Context, key string) (Session, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[key]
	if !ok {
		return Session{}, ErrNoSession
	}
	if !m.now().Before(v.expires) {
		delete(m.m, key)
		return Session{}, ErrNoSession
	}
	return v.s, nil
}

// Delete implements Sessions.
func (m *MemorySessions) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, key)
	return nil
}
