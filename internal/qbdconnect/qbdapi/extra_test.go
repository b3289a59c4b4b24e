package qbdapi

import (
	"encoding/json"
	"reflect"
	"testing"
)

// TestExtraRoundTrip: properties the seed does not name survive a decode
// and an encode at every level that allows them.
func TestExtraRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		v        any
	}{
		{"customer", `{"id":"c1","name":"Acme","tier":"gold","tags":["a",1],
			"address":{"street1":"1 Main","city":"Albany","state":"NY","postalCode":"12207","county":"Albany"},
			"primaryBillingContact":{"email":"a@example.com","title":"CFO"},
			"qbdInstances":[{"instanceId":"i1","name":"B","customerId":"c1","contact":{"firstName":"A","lastName":"L","email":"a@example.com","mobile":"1"},
				"sla":{"supportHours":1.5,"transactionLimit":10,"defaultHourlyRate":0,"tier":{"x":null}},"region":"us"}]}`, &Customer{}},
		{"subscription", `{"subscriptionId":"s","quantity":0,"status":"canceled","cancelAt":1700000000,"sla":{"supportHours":0,"transactionLimit":0,"defaultHourlyRate":0}}`, &Subscription{}},
		{"product", `{"id":"prod_qbd","active":false,"metadata":{"k":"v"}}`, &Product{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := json.Unmarshal([]byte(tc.in), tc.v); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, string(out), tc.in) {
				t.Errorf("round trip\n %s\nwant\n %s", out, tc.in)
			}
		})
	}
}

func TestExtraDecoded(t *testing.T) {
	t.Parallel()
	var c Customer
	in := `{"id":"c1","Name":"case-folded","tier":"gold","primaryBillingContact":{"email":"a@example.com"}}`
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	want := map[string]json.RawMessage{"tier": json.RawMessage(`"gold"`)}
	if c.Name != "case-folded" || !reflect.DeepEqual(c.Extra, want) || c.PrimaryBillingContact.Extra != nil {
		t.Errorf("decoded %+v, want Name from the case-folded key and Extra %s", c, want["tier"])
	}
}

// TestExtraNamedFieldWins: an Extra key that a named field uses is not
// sent twice.
func TestExtraNamedFieldWins(t *testing.T) {
	t.Parallel()
	s := Subscription{SubscriptionID: "s", Quantity: 2, Extra: map[string]json.RawMessage{"quantity": json.RawMessage("9"), "Status": json.RawMessage(`"x"`), "z": nil}}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"subscriptionId":"s","quantity":2,"z":null}`; string(out) != want {
		t.Errorf("encoded %s, want %s", out, want)
	}
	if out, _ := json.Marshal(InstancePatch{}); string(out) != `{}` {
		t.Errorf("empty patch encoded %s, want {}", out)
	}
	if out, _ := json.Marshal(InstancePatch{Extra: map[string]json.RawMessage{"a": json.RawMessage(` 1 `)}}); string(out) != `{"a":1}` {
		t.Errorf("patch encoded %s, want {\"a\":1}", out)
	}
}
