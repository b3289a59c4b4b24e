package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/banking-marketplace/webhook/internal/appdirect"
	"github.com/banking-marketplace/webhook/internal/inbox"
)

// Only AppDirect refusing the result itself ends a job refused (never
// posted again); a refusal of our own setup, at the token endpoint or by
// the client before sending, is retried until it is fixed, so that no
// result is dropped for a configuration error.
func TestPostResultRefusedOnlyByTheResultRoute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                string
		token, result       int    // statuses; 0: 200
		tokenError          string // the token endpoint's OAuth2 error code
		market              string // "": the server's own
		refused, resultSent bool
	}{
		{name: "accepted", resultSent: true},
		{name: "result 400", result: 400, refused: true, resultSent: true},
		{name: "result 404", result: 404, refused: true, resultSent: true},
		{name: "result 409", result: 409, refused: true, resultSent: true},
		{name: "result 401", result: 401, resultSent: true},
		{name: "result 503", result: 503, resultSent: true},
		{name: "token 400 invalid_scope", token: 400, tokenError: "invalid_scope"},
		{name: "token 401 invalid_client", token: 401, tokenError: "invalid_client"},
		{name: "token 404", token: 404},
		{name: "marketplace not configured here", market: "https://other.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var sent atomic.Bool
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/oauth2/token":
					if tc.token != 0 {
						w.Header().Set("Content-Type", "application/json")
						w.WriteHeader(tc.token)
						_, _ = w.Write([]byte(`{"error":"` + tc.tokenError + `"}`))
						return
					}
					w.Header().Set("Content-Type", "application/json")
					_, _ = w.Write([]byte(`{"access_token":"t","token_type":"bearer","expires_in":3600}`))
				case strings.HasSuffix(r.URL.Path, "/result"):
					sent.Store(true)
					if tc.result != 0 {
						w.WriteHeader(tc.result)
						return
					}
					w.WriteHeader(http.StatusOK)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			c, err := appdirect.NewClient([]string{srv.URL}, appdirect.WithOAuth2("id", "secret"), appdirect.WithRetry(1, 0, 0))
			if err != nil {
				t.Fatal(err)
			}
			market := srv.URL
			if tc.market != "" {
				market = tc.market
			}
			err = marketplace{c}.PostResult(context.Background(), market, "tok-1", []byte(`{"success":true}`))
			if refused := errors.Is(err, inbox.ErrResultRefused); refused != tc.refused || sent.Load() != tc.resultSent {
				t.Errorf("PostResult: %v (refused %t), result route called %t; want refused %t, called %t", err, refused, sent.Load(), tc.refused, tc.resultSent)
			}
			if !tc.refused && tc.name != "accepted" && err == nil {
				t.Error("no error; want one, to be retried")
			}
		})
	}
}
