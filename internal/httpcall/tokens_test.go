package httpcall

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The token cache: one fetch serves many calls; Drop makes the next call
// fetch again, but only once however many callers drop the same token;
// each fetch is an observed TokenAction attempt; a redirect is not
// followed (the secret goes to the token URL only); a caller's deadline
// ends its wait.
func TestTokens(t *testing.T) {
	t.Parallel()
	var fetches, redirected atomic.Int32
	slow := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if user, pass, ok := r.BasicAuth(); !ok || user != "id" || pass != "secret" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":3600}`))
	})
	mux.HandleFunc("POST /moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/elsewhere", func(http.ResponseWriter, *http.Request) { redirected.Add(1) })
	mux.HandleFunc("POST /slow", func(http.ResponseWriter, *http.Request) { <-slow })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer close(slow)
	c, rec := newCore(t, srv.URL, nil)
	cfg := func(path string) TokenConfig {
		return TokenConfig{URL: srv.URL + path, ClientID: "id", ClientSecret: "secret", AuthStyle: oauth2.AuthStyleInHeader}
	}

	tokens := c.NewTokens(cfg("/token"))
	for range 3 {
		if tok, err := Token(context.Background(), tokens.Current()); err != nil || tok.AccessToken != "tok" {
			t.Fatalf("Token = %v, %v", tok, err)
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Errorf("%d fetches for three calls, want 1", n)
	}
	used := tokens.Current()
	tokens.Drop(used)
	if _, err := Token(context.Background(), tokens.Current()); err != nil || fetches.Load() != 2 {
		t.Errorf("after Drop: %v, %d fetches; want 2", err, fetches.Load())
	}
	tokens.Drop(used) // a late caller refused the old token: the new one stays
	if _, err := Token(context.Background(), tokens.Current()); err != nil || fetches.Load() != 2 {
		t.Errorf("after a stale Drop: %v, %d fetches; want still 2", err, fetches.Load())
	}
	if a := rec.Attempts(); len(a) != 2 || a[0].Action != TokenAction || a[0].Status != http.StatusOK {
		t.Errorf("observed %+v, want two token attempts", a)
	}

	bad := c.NewTokens(TokenConfig{URL: srv.URL + "/token", ClientID: "id", ClientSecret: "wrong", AuthStyle: oauth2.AuthStyleInHeader})
	var re *oauth2.RetrieveError
	if err := bad.Refresh(context.Background()); !errors.As(err, &re) || re.Response.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong secret: %v, want the token endpoint's 401", err)
	}
	if _, err := Token(context.Background(), c.NewTokens(cfg("/moved")).Current()); err == nil || redirected.Load() != 0 {
		t.Errorf("a redirected token request: %v, %d requests at the redirect's target; want an error and none", err, redirected.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := Token(ctx, c.NewTokens(cfg("/slow")).Current()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a slow token endpoint: %v, want the caller's deadline", err)
	}
}
