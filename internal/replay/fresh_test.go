package replay

import (
	"regexp"
	"testing"
)

func TestRewriteSubscription(t *testing.T) {
	t.Parallel()
	fresh := func(id string) string { return "new-" + id }
	tests := []struct {
		name   string
		body   string
		want   string
		wantID string
	}{
		{"formatted, the rest kept byte for byte",
			"{\n    \"user_id\": 12345,\n    \"subscription_id\" :  \"abc\",\n    \"n\": 1.50\n}\n",
			"{\n    \"user_id\": 12345,\n    \"subscription_id\" :  \"new-abc\",\n    \"n\": 1.50\n}\n", "new-abc"},
		{"compact", `{"subscription_id":"abc","x":[1,{"y":"}"}]}`, `{"subscription_id":"new-abc","x":[1,{"y":"}"}]}`, "new-abc"},
		{"after values that hold quotes and braces",
			`{"a":"say \"subscription_id\": \"x\"","b":{"subscription_id":"nested"},"subscription_id":"abc"}`,
			`{"a":"say \"subscription_id\": \"x\"","b":{"subscription_id":"nested"},"subscription_id":"new-abc"}`, "new-abc"},
		{"an escaped id is decoded first", `{"subscription_id":"a\u0062c"}`, `{"subscription_id":"new-abc"}`, "new-abc"},
		{"every top-level copy", `{"subscription_id":"a","subscription_id":"b"}`, `{"subscription_id":"new-a","subscription_id":"new-b"}`, "new-b"},
		{"named in another case, as events.Decode reads it", `{"Subscription_ID":"abc"}`, `{"Subscription_ID":"new-abc"}`, "new-abc"},
		{"nested only: unchanged", `{"event":{"subscription_id":"abc"}}`, `{"event":{"subscription_id":"abc"}}`, ""},
		{"not a string: unchanged", `{"subscription_id":42}`, `{"subscription_id":42}`, ""},
		{"missing: unchanged", `{"user_id":1}`, `{"user_id":1}`, ""},
		{"not an object: unchanged", `["subscription_id","abc"]`, `["subscription_id","abc"]`, ""},
		{"not JSON: unchanged", `{"subscription_id":"abc",`, `{"subscription_id":"abc",`, ""},
		{"empty", ``, ``, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, id := rewriteSubscription([]byte(tt.body), fresh)
			if string(got) != tt.want || id != tt.wantID {
				t.Errorf("rewriteSubscription(%s) = %s, %q; want %s, %q", tt.body, got, id, tt.want, tt.wantID)
			}
		})
	}
}

func TestFreshIDs(t *testing.T) {
	t.Parallel()
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	f := newFreshIDs()
	a, b := f.get("one"), f.get("two")
	for _, id := range []string{a, b} {
		if !uuid.MatchString(id) {
			t.Errorf("fresh id %q is not a version 4 UUID", id)
		}
	}
	if a == b {
		t.Errorf("two originals got the same fresh id %q", a)
	}
	if again := f.get("one"); again != a {
		t.Errorf("the same original got %q, then %q", a, again)
	}
	if other := newFreshIDs().get("one"); other == a {
		t.Errorf("another run got the same fresh id %q", a)
	}
}
