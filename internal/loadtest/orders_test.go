package loadtest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/banking-marketplace/webhook/internal/events"
)

func TestOrdersAreDistinctValidOrders(t *testing.T) {
	tmpl, err := loadTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.extension != "my-product-name" {
		t.Fatalf("extension %q; want the fixture's my-product-name", tmpl.extension)
	}
	seen := map[string]bool{tmpl.subscriptionID: true, tmpl.creatorUUID: true}
	for i, body := range tmpl.orders(50) {
		ev, err := events.Decode(body)
		if err != nil {
			t.Fatalf("order %d does not decode: %v", i, err)
		}
		if ev.EventType != events.SubscriptionOrder || ev.Event.Creator == nil {
			t.Fatalf("order %d: %s with creator %v", i, ev.EventType, ev.Event.Creator)
		}
		for _, id := range []string{ev.SubscriptionID, ev.Event.Creator.UUID} {
			if seen[id] {
				t.Fatalf("order %d reuses id %s", i, id)
			}
			seen[id] = true
		}
		if bytes.Contains(body, []byte(tmpl.creatorUUID)) || bytes.Contains(body, []byte(tmpl.subscriptionID)) {
			t.Fatalf("order %d still holds an id of the template", i)
		}
		if len(body) != len(tmpl.raw) {
			t.Fatalf("order %d is %d bytes, the template %d: only the ids (same length) should change", i, len(body), len(tmpl.raw))
		}
	}
}

func TestTemplateRefuses(t *testing.T) {
	change := bytes.Replace(defaultOrder, []byte(`"event_type": "SUBSCRIPTION_ORDER"`), []byte(`"event_type": "SUBSCRIPTION_CHANGE"`), 1)
	noCreator := bytes.Replace(defaultOrder, []byte(`"uuid": "4fc5fb4b-9809-49b5-abc5-7dab4544e685"`), []byte(`"uuid": ""`), 1)
	tests := []struct {
		name string
		raw  []byte
	}{
		{"not JSON", []byte("{")},
		{"not an ORDER", change},
		{"no creator uuid", noCreator},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.raw, defaultOrder) {
				t.Fatal("the edit did not apply: the embedded fixture changed shape")
			}
			path := filepath.Join(t.TempDir(), "order.json")
			if err := os.WriteFile(path, tt.raw, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadTemplate(path)
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v; want a *UsageError naming --fixture", err)
			}
		})
	}
	if _, err := loadTemplate(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("a missing --fixture was accepted")
	}
}
