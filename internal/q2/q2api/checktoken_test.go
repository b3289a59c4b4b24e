package q2api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// CheckToken tells refused credentials from an unreachable Q2, and the
// token it fetches is the one the next call uses.
func TestCheckToken(t *testing.T) {
	t.Parallel()
	closed := func(t *testing.T) string {
		t.Helper()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		return "http://" + addr
	}
	answer := func(status int, body string) func(t *testing.T) string {
		return func(t *testing.T) string {
			t.Helper()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeEnvelope(w, status, body) }))
			t.Cleanup(srv.Close)
			return srv.URL
		}
	}
	tests := []struct {
		name   string
		server func(t *testing.T) string
		want   error // nil: no error
	}{
		{"invalid_client", answer(401, `{"error":"invalid_client"}`), ErrUnauthorized},
		{"invalid_client as 400", answer(400, `{"error":"invalid_client"}`), ErrUnauthorized},
		{"forbidden", answer(403, `{"error":"access_denied"}`), ErrForbidden},
		{"no token endpoint there", answer(404, `not found`), ErrNotFound},
		{"unavailable", answer(503, `{"error":"temporarily_unavailable"}`), ErrTransient},
		{"connection refused", closed, ErrTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := newClient(t, tt.server(t)).CheckToken(context.Background())
			if !errors.Is(err, tt.want) {
				t.Errorf("CheckToken = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("the token is reused", func(t *testing.T) {
		t.Parallel()
		srv := setup(t, map[string]http.HandlerFunc{"/v2/": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok-2" {
				writeEnvelope(w, 401, `{"success":false,"errors":["not the newest token"],"status":401}`)
				return
			}
			writeEnvelope(w, 200, `{"data":{},"success":true}`)
		}})
		c := newClient(t, srv.URL)
		for range 2 { // the second check replaces the first token
			if err := c.CheckToken(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if err := deleteUser(c); err != nil {
			t.Fatal(err)
		}
		if n := srv.tokens.Load(); n != 2 {
			t.Errorf("token requests = %d, want 2 (one per check, none for the call)", n)
		}
	})

	t.Run("the caller's deadline", func(t *testing.T) {
		t.Parallel()
		block := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
		t.Cleanup(func() { close(block); srv.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := newClient(t, srv.URL).CheckToken(ctx); !errors.Is(err, ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CheckToken = %v, want ErrTransient and context.DeadlineExceeded", err)
		}
	})

	t.Run("without credentials", func(t *testing.T) {
		t.Parallel()
		c, err := New("http://127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckToken(context.Background()); err != nil {
			t.Errorf("CheckToken without credentials = %v, want nil", err)
		}
	})
}
