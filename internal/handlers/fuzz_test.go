package handlers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/store"
)

// pipeline is the whole service behind the handler: embedded Redis, the
// sandbox over HTTP, the real inbox and processing.
func pipeline(f *testing.F) http.Handler {
	f.Helper()
	db, err := store.Open(context.Background(), store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	srv := httptest.NewServer(sandbox.New(q2sandbox.New(q2sandbox.Config{})).Handler())
	f.Cleanup(srv.Close)
	client, err := q2api.New(srv.URL, q2api.WithCredentials(q2sandbox.DefaultClientID, q2sandbox.DefaultClientSecret))
	if err != nil {
		f.Fatal(err)
	}
	target, err := q2.New(client, q2.Settings{})
	if err != nil {
		f.Fatal(err)
	}
	svc, err := provisioning.New(db, []provisioning.Plan{{Product: products.DefaultName, Targets: []provisioning.Target{target}}}, provisioning.Config{}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	in := inbox.New(db, svc, inbox.Config{ProcessTimeout: 2 * time.Second, Wait: 100 * time.Millisecond}, zap.NewNop())
	return handlers.New(handlers.Config{Receiver: in})
}

// FuzzMarketplace posts random bodies and headers: never a 5xx, a panic,
// or a reply that is not one of the two documents.
func FuzzMarketplace(f *testing.F) {
	order, err := os.ReadFile("testdata/subscription-order.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(order, "", "application/json", "my-product-name")
	f.Add(order, "msg_1", "", "x")
	f.Add(bytes.Replace(order, []byte("SUBSCRIPTION_ORDER"), []byte("SUBSCRIPTION_CANCEL"), -1), "msg_2", "application/json", "p")
	f.Add(bytes.Replace(order, []byte(`"flag"`), []byte(`"flag":"STATELESS","x"`), 1), "", "application/cloudevents+json", "p")
	f.Add([]byte(`{"event":{},"event_type":"SUBSCRIPTION_NOTICE","user_id":1,"subscription_id":"s"}`), "id with space", "text/plain", "%zz")
	f.Add([]byte("\x00\xff{"), "", "application/json; charset=\"", "")
	f.Add([]byte(`[`), "msg_3", "multipart/form-data; boundary=", "p")
	h := pipeline(f)

	f.Fuzz(func(t *testing.T, body []byte, id, contentType, extension string) {
		req := httptest.NewRequest(http.MethodPost, "/marketplace/p", bytes.NewReader(body))
		req.URL.Path = "/marketplace/" + extension
		if id != "" {
			req.Header["Webhook-Id"] = []string{id}
		}
		if contentType != "" {
			req.Header["Content-Type"] = []string{contentType}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for body %q: %s", rec.Code, body, rec.Body)
		}
		var doc map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatalf("reply is not JSON: %q", rec.Body)
		}
		success, ok := doc["success"].(bool)
		if !ok || (success && len(doc) != 2) || (!success && (len(doc) != 3 || doc["errorCode"] == nil || doc["message"] == nil)) {
			t.Fatalf("reply is not a contract document: %s", rec.Body)
		}
	})
}
