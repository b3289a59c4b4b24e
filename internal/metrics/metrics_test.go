package metrics

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/httpcall"
)

// TestOutsideCall: every client's attempts land in the same families, by
// system and action; a token fetch counts in the token family too.
func TestOutsideCall(t *testing.T) {
	t.Parallel()
	m := New()
	for _, a := range []httpcall.Attempt{
		{System: "q2", Action: "Enrollment", Method: "POST", Status: 201, Duration: time.Millisecond},
		{System: "qbd_connect", Action: "GET /customers/{id}", Method: "GET", Status: 503, Duration: time.Millisecond, Err: errors.New("x")},
		{System: "helix", Action: "addEntitlement", Method: "POST", Duration: time.Millisecond, Err: errors.New("reset")},
		{System: "q2", Action: httpcall.TokenAction, Method: "POST", Status: 200, Duration: time.Millisecond},
		{System: "q2", Action: httpcall.TokenAction, Method: "POST", Status: 401, Duration: time.Millisecond, Err: errors.New("refused")},
	} {
		m.OutsideCall(a)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`webhook_upstream_requests_total{action="Enrollment",status="201",target="q2"} 1`,
		`webhook_upstream_requests_total{action="GET /customers/{id}",status="503",target="qbd_connect"} 1`,
		`webhook_upstream_requests_total{action="addEntitlement",status="0",target="helix"} 1`,
		`webhook_upstream_request_duration_seconds_count{action="Enrollment",target="q2"} 1`,
		`webhook_token_refreshes_total{result="ok",target="q2"} 1`,
		`webhook_token_refreshes_total{result="error",target="q2"} 1`,
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var none *Metrics
	none.OutsideCall(httpcall.Attempt{System: "q2"}) // a nil *Metrics records nothing, and does not panic
}
