package events

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/canonjson"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mutate decodes a fixture into generic JSON, applies f, and encodes it.
func mutate(t *testing.T, name string, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFixture(t, name), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func event(m map[string]any) map[string]any   { return m["event"].(map[string]any) }
func payload(m map[string]any) map[string]any { return event(m)["payload"].(map[string]any) }

func TestDecodeFixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file         string
		eventType    EventType
		account      string
		edition      string
		quantity     Quantity
		created      time.Time
		hasCompany   bool
		hasOrderItem bool
	}{
		{"subscription-order.json", SubscriptionOrder, "", "BASIC", 5, time.Date(2021, 12, 6, 15, 27, 32, 636332000, time.UTC), true, true},
		{"subscription-change.json", SubscriptionChange, "ACCOUNT-ID-FROM-ORDER", "PREMIUM", 10, time.Date(2021, 12, 7, 9, 0, 0, 1000, time.UTC), false, true},
		{"subscription-cancel.json", SubscriptionCancel, "ACCOUNT-ID-FROM-ORDER", "", 0, time.Date(2021, 12, 8, 10, 30, 0, 500000000, time.UTC), false, false},
		{"q2-sdk-sample-cancel.json", SubscriptionCancel, "", "", 0, time.Date(2021, 12, 6, 15, 27, 32, 636332000, time.UTC), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			ev, err := Decode(readFixture(t, tt.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev.EventType != tt.eventType || ev.Event.Type != tt.eventType {
				t.Errorf("event types = %q/%q, want %q", ev.EventType, ev.Event.Type, tt.eventType)
			}
			if ev.SubscriptionID != "a3c9c831-e550-428f-b89c-43c5e7b338b9" || ev.UserID != 12345 || ev.FIName != "My FI Name" {
				t.Errorf("top-level fields = %q %d %q", ev.SubscriptionID, ev.UserID, ev.FIName)
			}
			if got := ev.AccountIdentifier(); got != tt.account {
				t.Errorf("AccountIdentifier = %q, want %q", got, tt.account)
			}
			if ev.Created == nil || !ev.Created.Equal(tt.created) {
				t.Errorf("Created = %v, want %v", ev.Created, tt.created)
			}
			if (ev.Event.Payload.Company != nil) != tt.hasCompany {
				t.Errorf("company present = %v, want %v", ev.Event.Payload.Company != nil, tt.hasCompany)
			}
			if c := ev.Event.Creator; c == nil || c.Email != "jdoe@q2ebanking.com" || c.Address == nil || c.Address.City != "COLORADO SPRINGS" {
				t.Errorf("creator = %+v", c)
			}
			if o := ev.Event.Payload.Order; tt.hasOrderItem {
				if o == nil || o.EditionCode != tt.edition || len(o.Items) != 1 || o.Items[0].Quantity != tt.quantity || o.Items[0].Unit != "USER" {
					t.Errorf("order = %+v", o)
				}
			} else if o != nil {
				t.Errorf("order = %+v, want none", o)
			}
			if ev.Event.Payload.Configuration["subscriptionId"] != "950cfd23-d730-4505-b538-d14a70a7a1b0" {
				t.Errorf("configuration = %v", ev.Event.Payload.Configuration)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		body  func(t *testing.T) []byte
		check func(t *testing.T, ev *SubscriptionEvent)
	}{
		{"timestamp with zone", setTop("created", "2021-12-06T15:27:32.636332+02:00"), wantCreated(time.Date(2021, 12, 6, 13, 27, 32, 636332000, time.UTC))},
		{"timestamp Z", setTop("created", "2021-12-06T15:27:32Z"), wantCreated(time.Date(2021, 12, 6, 15, 27, 32, 0, time.UTC))},
		{"timestamp no fraction", setTop("created", "2021-12-06T15:27:32"), wantCreated(time.Date(2021, 12, 6, 15, 27, 32, 0, time.UTC))},
		{"timestamp one digit", setTop("created", "2021-12-06T15:27:32.5"), wantCreated(time.Date(2021, 12, 6, 15, 27, 32, 500000000, time.UTC))},
		{"timestamp three digits", setTop("created", "2021-12-06T15:27:32.123"), wantCreated(time.Date(2021, 12, 6, 15, 27, 32, 123000000, time.UTC))},
		{"timestamp RFC 3339 nano", setTop("created", "2021-12-06T15:27:32.123456789-05:00"), wantCreated(time.Date(2021, 12, 6, 20, 27, 32, 123456789, time.UTC))},
		{"timestamp with space", setTop("created", "2021-12-06 15:27:32.636332"), wantCreated(time.Date(2021, 12, 6, 15, 27, 32, 636332000, time.UTC))},
		{"timestamp null", setTop("created", nil), func(t *testing.T, ev *SubscriptionEvent) {
			if ev.Created != nil {
				t.Errorf("Created = %v, want nil", ev.Created)
			}
		}},
		{"quantity string", setQuantity("7"), wantQuantity(7)},
		{"quantity string with spaces", setQuantity(" 7 "), wantQuantity(7)},
		{"quantity number", setQuantity(7), wantQuantity(7)},
		{"quantity whole float", setQuantity(7.0), wantQuantity(7)},
		{"creator null", setEvent("creator", nil), func(t *testing.T, ev *SubscriptionEvent) {
			if ev.Event.Creator != nil {
				t.Error("creator should be nil")
			}
		}},
		{"creator absent", func(t *testing.T) []byte {
			return mutate(t, "subscription-order.json", func(m map[string]any) { delete(event(m), "creator") })
		}, func(t *testing.T, ev *SubscriptionEvent) {
			if ev.Event.Creator != nil {
				t.Error("creator should be nil")
			}
		}},
		{"address null", func(t *testing.T) []byte {
			return mutate(t, "subscription-order.json", func(m map[string]any) { event(m)["creator"].(map[string]any)["address"] = nil })
		}, func(t *testing.T, ev *SubscriptionEvent) {
			if ev.Event.Creator.Address != nil {
				t.Error("address should be nil")
			}
		}},
		{"company null", setPayload("company", nil), func(t *testing.T, ev *SubscriptionEvent) {
			if ev.Event.Payload.Company != nil {
				t.Error("company should be nil")
			}
		}},
		{"unknown fields", func(t *testing.T) []byte {
			return mutate(t, "subscription-order.json", func(m map[string]any) {
				m["brand_new"] = map[string]any{"x": 1}
				event(m)["links"] = []any{map[string]any{"rel": "self"}}
				payload(m)["addonBinding"] = "anything"
			})
		}, func(t *testing.T, ev *SubscriptionEvent) {}},
		{"stateless flag", setEvent("flag", "STATELESS"), func(t *testing.T, ev *SubscriptionEvent) {
			if !ev.Stateless() {
				t.Error("Stateless() = false")
			}
		}},
		{"unsupported event type decodes", func(t *testing.T) []byte {
			return mutate(t, "subscription-order.json", func(m map[string]any) {
				m["event_type"] = "SUBSCRIPTION_NOTICE"
				event(m)["type"] = "SUBSCRIPTION_NOTICE"
			})
		}, func(t *testing.T, ev *SubscriptionEvent) {
			if ev.EventType.Supported() {
				t.Error("SUBSCRIPTION_NOTICE reported as supported")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Decode(tt.body(t))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			tt.check(t, ev)
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body func(t *testing.T) []byte
		want []string // each must appear in the message
	}{
		{"not JSON", raw("hello"), []string{"body is not valid JSON"}},
		{"truncated", func(t *testing.T) []byte {
			b := readFixture(t, "subscription-order.json")
			return b[:len(b)/2]
		}, []string{"body is not valid JSON"}},
		{"empty", raw(""), []string{"body is not valid JSON"}},
		{"array", raw("[1,2]"), []string{"body must be a JSON object"}},
		{"null", raw("null"), []string{"body must be a JSON object"}},
		{"empty object", raw("{}"), []string{"event is required", "event_type is required", "user_id is required", "subscription_id is required"}},
		{"missing subscription_id", drop("subscription_id"), []string{"subscription_id is required"}},
		{"empty subscription_id", setTop("subscription_id", ""), []string{"subscription_id is required"}},
		{"subscription_id with space", setTop("subscription_id", "a b"), []string{"subscription_id must be printable ASCII"}},
		{"subscription_id with brace", setTop("subscription_id", "a{b}"), []string{"subscription_id must be printable ASCII"}},
		{"subscription_id too long", setTop("subscription_id", strings.Repeat("a", 129)), []string{"subscription_id must be at most 128"}},
		{"user_id string", setTop("user_id", "12345"), []string{"user_id must be an integer"}},
		{"user_id fraction", setTop("user_id", 1.5), []string{"user_id must be an integer"}},
		{"user_id negative", setTop("user_id", -1), []string{"user_id must be 0 or more"}},
		{"event string", setTop("event", "x"), []string{"event must be an object"}},
		{"event_type number", setTop("event_type", 5), []string{"event_type must be a string"}},
		{"created garbage", setTop("created", "yesterday"), []string{"created is not a timestamp"}},
		{"created number", setTop("created", 1638804452), []string{"created is not a timestamp"}},
		{"processed bad date", setTop("processed", "2021-13-45T99:00:00"), []string{"processed is not a timestamp"}},
		{"quantity word", setQuantity("ten"), []string{"event.payload.order.items.quantity must be a whole number"}},
		{"quantity fraction", setQuantity(2.5), []string{"quantity must be a whole number"}},
		{"quantity negative", setQuantity(-3), []string{"event.payload.order.items[0].quantity must be 0 or more"}},
		{"creator string", setEvent("creator", "john"), []string{"event.creator must be an object"}},
		{"type mismatch", setEvent("type", "SUBSCRIPTION_CANCEL"), []string{"event.type is \"SUBSCRIPTION_CANCEL\" but event_type is \"SUBSCRIPTION_ORDER\""}},
		{"several at once", func(t *testing.T) []byte {
			return mutate(t, "subscription-order.json", func(m map[string]any) {
				m["user_id"] = "x"
				m["created"] = "nope"
				m["subscription_id"] = "has space"
			})
		}, []string{"user_id must be an integer", "created is not a timestamp", "subscription_id must be printable ASCII"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Decode(tt.body(t))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Decode error = %v (%T), want *ValidationError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDecodeHugeBody(t *testing.T) {
	t.Parallel()
	// A large but valid event (many items) decodes; one past the item limit is refused.
	items := make([]any, 101)
	for i := range items {
		items[i] = map[string]any{"unit": "USER", "quantity": i}
	}
	body := mutate(t, "subscription-order.json", func(m map[string]any) {
		payload(m)["order"].(map[string]any)["items"] = items
		m["padding"] = strings.Repeat("x", 512<<10)
	})
	_, err := Decode(body)
	if err == nil || !strings.Contains(err.Error(), "event.payload.order.items must have at most 100 entries") {
		t.Fatalf("Decode error = %v", err)
	}
}

func TestReplyDocuments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reply Reply
		want  string
	}{
		{Success("42"), `{"success":true,"accountIdentifier":"42"}`},
		{Success(""), `{"success":true,"accountIdentifier":""}`},
		{Failure(AccountNotFound, "no account"), `{"success":false,"errorCode":"ACCOUNT_NOT_FOUND","message":"no account"}`},
		{Reply{Success: true, AccountIdentifier: "1", ErrorCode: UnknownError, Message: "ignored"}, `{"success":true,"accountIdentifier":"1"}`},
	}
	for _, tt := range tests {
		got, err := json.Marshal(tt.reply)
		if err != nil || string(got) != tt.want {
			t.Errorf("Marshal(%+v) = %s, %v; want %s", tt.reply, got, err, tt.want)
		}
		var back Reply
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatal(err)
		}
		if again, _ := json.Marshal(back); string(again) != tt.want {
			t.Errorf("round trip = %s, want %s", again, tt.want)
		}
	}
	if len(ErrorCodes) != 14 {
		t.Errorf("len(ErrorCodes) = %d, want the 14 codes of the contract", len(ErrorCodes))
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"subscription-order.json", "subscription-change.json", "subscription-cancel.json"} {
		f.Add(readFixture(f, name))
	}
	f.Add([]byte(`{"event":{"payload":{"order":{"items":[{"quantity":"1e400"}]}}},"user_id":1,"event_type":"x","subscription_id":"s"}`))
	f.Add([]byte(`{"created":"2021-12-06T15:27:32.","user_id":9223372036854775808}`))
	// Names the two readings must match alike: other cases, dashes,
	// letters that fold to ASCII (ſ, K), invalid UTF-8, nulls.
	f.Add([]byte(`{"EVENT":{"TYPE":"SUBSCRIPTION_ORDER","Payload":{"Order":{"Items":[{"Unit":"USER","Quantity":"2"}]}}},"Event_Type":"SUBSCRIPTION_ORDER","USER_ID":1,"Subscription_Id":"s"}`))
	f.Add([]byte(`{"event":{},"event-type":"SUBSCRIPTION_ORDER","user_id":1,"subscription_id":"s","subscriptionid":"t"}`))
	f.Add([]byte("{\"event\":{},\"event_type\":\"SUBSCRIPTION_ORDER\",\"user_id\":1,\"\u017fubscription_id\":\"s\"}"))
	f.Add([]byte("{\"event\":{\"flag\":\"\xff\"},\"event_type\":\"SUBSCRIPTION_ORDER\",\"user_id\":1,\"subscription_id\":\"s\",\"fi_name\":\"a\xc3\"}"))
	f.Add([]byte(`{"event":{"payload":null,"creator":null},"event_type":"SUBSCRIPTION_ORDER","user_id":1,"subscription_id":"s","created":null,"sso_user_id":null}`))
	f.Add([]byte(`{"event":{"payload":{"configuration":[],"order":{"items":[{"quantity":5.0},{"quantity":null}]}}},"event_type":"SUBSCRIPTION_ORDER","user_id":1,"subscription_id":"s"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, err := Decode(body)
		if err == nil && ev == nil {
			t.Fatal("nil event without error")
		}
		if err != nil {
			var verr *ValidationError
			if !errors.As(err, &verr) || len(verr.Fields) == 0 {
				t.Fatalf("error %v is not a non-empty *ValidationError", err)
			}
		}
		if json.Valid(body) {
			var dup *canonjson.DuplicateKeyError
			_, err := canonjson.Fingerprint(body)
			if err != nil && !errors.As(err, &dup) {
				t.Fatalf("Fingerprint of valid JSON: %v", err)
			}
			if err != nil {
				// Names given twice: read one way or the other, and
				// refused by the doors, which fingerprint every event
				// they decode (and by replay's dry run).
				return
			}
		}
		// The one-pass reading takes only what the member-by-member one
		// reads the same way.
		if whole, ok := decodeWhole(body); ok {
			members, err := decodeMembers(body)
			if err != nil {
				t.Fatalf("read in one pass as %+v, but member by member: %v", whole, err)
			}
			if !reflect.DeepEqual(whole, members) {
				t.Fatalf("read in one pass as\n%+v\nbut member by member as\n%+v", whole, members)
			}
		}
	})
}

func raw(s string) func(*testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }

func setTop(key string, v any) func(*testing.T) []byte {
	return func(t *testing.T) []byte {
		return mutate(t, "subscription-order.json", func(m map[string]any) { m[key] = v })
	}
}

func drop(key string) func(*testing.T) []byte {
	return func(t *testing.T) []byte {
		return mutate(t, "subscription-order.json", func(m map[string]any) { delete(m, key) })
	}
}

func setEvent(key string, v any) func(*testing.T) []byte {
	return func(t *testing.T) []byte {
		return mutate(t, "subscription-order.json", func(m map[string]any) { event(m)[key] = v })
	}
}

func setPayload(key string, v any) func(*testing.T) []byte {
	return func(t *testing.T) []byte {
		return mutate(t, "subscription-order.json", func(m map[string]any) { payload(m)[key] = v })
	}
}

func setQuantity(v any) func(*testing.T) []byte {
	return func(t *testing.T) []byte {
		return mutate(t, "subscription-order.json", func(m map[string]any) {
			payload(m)["order"].(map[string]any)["items"].([]any)[0].(map[string]any)["quantity"] = v
		})
	}
}

func wantCreated(want time.Time) func(*testing.T, *SubscriptionEvent) {
	return func(t *testing.T, ev *SubscriptionEvent) {
		t.Helper()
		if ev.Created == nil || !ev.Created.Equal(want) {
			t.Errorf("Created = %v, want %v", ev.Created, want)
		}
	}
}

func wantQuantity(want Quantity) func(*testing.T, *SubscriptionEvent) {
	return func(t *testing.T, ev *SubscriptionEvent) {
		t.Helper()
		if got := ev.Event.Payload.Order.Items[0].Quantity; got != want {
			t.Errorf("quantity = %d, want %d", got, want)
		}
	}
}
