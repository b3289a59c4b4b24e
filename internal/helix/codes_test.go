package helix

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/provisioning"
)

var update = flag.Bool("update", false, "rewrite the Helix code table in docs/helix.md")

// opNames name the calls in the subtests.
var opNames = map[Op]string{Add: "add", Edit: "edit", Remove: "remove"}

// want is a class without its message: "done", or a kind and an
// ErrorCode.
type want struct {
	done bool
	kind provisioning.Kind
	code events.ErrorCode
}

func (w want) String() string {
	if w.done {
		return "done"
	}
	return w.kind.String() + " " + string(w.code)
}

func got(c Class) want { return want{c.Done, c.Kind, c.Code} }

var (
	doneW      = want{done: true}
	transientW = want{kind: provisioning.Transient, code: events.TransportError}
)

// fail is a refusal (final) or, when final is false, a misconfiguration
// of the service's own setup.
func fail(code events.ErrorCode, final bool) want {
	if final {
		return want{kind: provisioning.Refused, code: code}
	}
	return want{kind: provisioning.Misconfigured, code: code}
}

// TestEveryCode lists every code of the addEntitlement seed and of the
// reference (edit, remove, common codes) with its expected class on each
// call, independently of the table, and checks the table has no other.
func TestEveryCode(t *testing.T) {
	t.Parallel()
	same := func(w want) [3]want { return [3]want{w, w, w} }
	expected := map[int][3]want{ // add, edit, remove
		50401:  same(fail(events.Unauthorized, false)),
		50403:  same(fail(events.Unauthorized, false)),
		50429:  same(transientW),
		50500:  same(transientW),
		50501:  same(transientW),
		50502:  same(transientW),
		50503:  same(transientW),
		50504:  same(transientW),
		50505:  same(transientW),
		195100: same(fail(events.Forbidden, true)),
		195101: same(fail(events.Forbidden, false)),
		195102: same(fail(events.AccountNotFound, true)),
		195103: same(fail(events.Forbidden, true)),
		195104: same(fail(events.Forbidden, true)),
		195105: same(fail(events.ConfigurationError, false)),
		195106: same(fail(events.ConfigurationError, false)),
		195107: same(fail(events.ConfigurationError, false)),
		195108: same(fail(events.ConfigurationError, false)),
		195109: same(fail(events.AccountNotFound, true)),
		195110: {doneW, fail(events.UserAlreadyExists, true), fail(events.UserAlreadyExists, true)},
		195112: same(fail(events.UserNotFound, true)),
		195113: same(fail(events.Forbidden, true)),
		195114: same(fail(events.Forbidden, true)),
		195115: same(fail(events.Forbidden, true)),
		195116: same(fail(events.Forbidden, true)),
		195117: same(fail(events.Forbidden, true)),
		195118: same(fail(events.Forbidden, true)),
		195119: {fail(events.AccountNotFound, true), fail(events.AccountNotFound, true), doneW},
		195122: same(fail(events.Forbidden, true)),
		60001:  same(fail(events.UserNotFound, true)),
		60002:  same(fail(events.Forbidden, true)),
		60003:  same(fail(events.Forbidden, true)),
		60004:  same(fail(events.Forbidden, true)),
		60005:  same(fail(events.Forbidden, true)),
	}
	for code, byOp := range expected {
		for i, op := range []Op{Add, Edit, Remove} {
			t.Run(fmt.Sprintf("%d/%s", code, opNames[op]), func(t *testing.T) {
				c := Classify(op, &helixapi.APIError{Route: "x", HTTPStatus: 400, Codes: []int{code}, RetryAfter: 3 * time.Second})
				if g := got(c); g != byOp[i] {
					t.Errorf("Classify(%s, %d) = %v, want %v", opNames[op], code, g, byOp[i])
				}
				checkMessage(t, c)
				if !c.Done && c.Kind != provisioning.Transient && !strings.Contains(c.Message, fmt.Sprint(code)) {
					t.Errorf("message %q does not name the code %d", c.Message, code)
				}
				if c.Kind == provisioning.Transient && c.RetryAfter != 3*time.Second {
					t.Errorf("RetryAfter = %v, want Helix's 3s", c.RetryAfter)
				}
			})
		}
	}
	seen := map[int]bool{}
	for _, r := range codes {
		if _, ok := expected[r.code]; !ok || seen[r.code] {
			t.Errorf("table code %d is unexpected or listed twice", r.code)
		}
		seen[r.code] = true
	}
	if len(seen) != len(expected) {
		t.Errorf("the table has %d codes, want %d", len(seen), len(expected))
	}
}

// checkMessage: a failure says something readable; done says nothing.
func checkMessage(t *testing.T, c Class) {
	t.Helper()
	switch {
	case c.Done && (c != Class{Done: true}):
		t.Errorf("done class carries more: %+v", c)
	case !c.Done && (c.Message == "" || strings.Contains(c.Message, "%!") || !slices.Contains(events.ErrorCodes, c.Code) || c.Kind == 0):
		t.Errorf("class %+v: want a kind, a known ErrorCode and a message", c)
	}
}

// others are failures without a code of the table, one per README row.
func others(t *testing.T) []struct {
	what string
	err  error
} {
	t.Helper()
	c, err := helixapi.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	_, invalid := c.AddEntitlement(context.Background(), helixapi.Entitlement{AccountID: 1, RequestingCustomerID: 2, TargetCustomerID: 3, Level: "ALL"})
	if !errors.Is(invalid, helixapi.ErrInvalidRequest) {
		t.Fatalf("AddEntitlement = %v, want ErrInvalidRequest", invalid)
	}
	return []struct {
		what string
		err  error
	}{
		{"HTTP 401 or 403 without a code", &helixapi.APIError{HTTPStatus: 401}},
		{"HTTP 408, 429 or 5xx without a known code", &helixapi.APIError{HTTPStatus: 503, Codes: []int{199999}}},
		{"transport failure or timeout", fmt.Errorf("helix addEntitlement: %w: %w", helixapi.ErrTransient, io.ErrUnexpectedEOF)},
		{"the caller's deadline", context.DeadlineExceeded},
		{"HTTP 404 or 405 without a code", &helixapi.APIError{HTTPStatus: 404}},
		{"an id or level refused before sending", invalid},
		{"a 2xx that is not Helix's envelope", fmt.Errorf("helix addEntitlement: %w: x", helixapi.ErrInvalidResponse)},
		{"any other code", &helixapi.APIError{HTTPStatus: 400, Codes: []int{199999}}},
		{"any other HTTP status without a code", &helixapi.APIError{HTTPStatus: 400}},
		{"anything else", errors.New("boom")},
	}
}

func TestOtherFailures(t *testing.T) {
	t.Parallel()
	wants := []want{
		fail(events.Unauthorized, false), transientW, transientW, transientW,
		fail(events.ConfigurationError, false), fail(events.ConfigurationError, false),
		transientW, fail(events.UnknownError, true),
		fail(events.UnknownError, true), fail(events.UnknownError, true),
	}
	for i, tc := range others(t) {
		for _, op := range []Op{Add, Edit, Remove} {
			t.Run(tc.what+"/"+opNames[op], func(t *testing.T) {
				c := Classify(op, tc.err)
				if g := got(c); g != wants[i] {
					t.Errorf("Classify(%s, %v) = %v, want %v", opNames[op], tc.err, g, wants[i])
				}
				checkMessage(t, c)
			})
		}
	}
	if c := Classify(Add, nil); c != (Class{Done: true}) {
		t.Errorf("Classify(nil) = %+v, want done", c)
	}
	if c := Classify(Add, others(t)[5].err); !strings.Contains(c.Message, `entitlement "ALL"`) {
		t.Errorf("message %q does not name the bad field", c.Message)
	}
}

// TestSeveralCodes: done first, then the code listed first in the table.
func TestSeveralCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		op    Op
		codes []int
		want  want
	}{
		{Add, []int{195104, 195110}, doneW},
		{Edit, []int{195110, 195104}, fail(events.Forbidden, true)},
		{Remove, []int{60004, 195119}, doneW},
		{Add, []int{195112, 50401}, fail(events.Unauthorized, false)},
		{Add, []int{195112, 50503}, transientW},
		{Add, []int{199999, 195112}, fail(events.UserNotFound, true)},
		{Edit, []int{195105, 195107}, fail(events.ConfigurationError, false)},
	} {
		t.Run(fmt.Sprint(opNames[tc.op], tc.codes), func(t *testing.T) {
			if g := got(Classify(tc.op, &helixapi.APIError{HTTPStatus: 400, Codes: tc.codes})); g != tc.want {
				t.Errorf("= %v, want %v", g, tc.want)
			}
		})
	}
}

const (
	readme      = "../../docs/helix.md"
	beginMarker = "<!-- helix-codes:begin; generated by go test ./internal/helix -update -->"
	endMarker   = "<!-- helix-codes:end -->"
)

// renderTable is the README's table, made by Classify itself.
func renderTable(t *testing.T) string {
	t.Helper()
	cell := func(op Op, err error) string {
		c := Classify(op, err)
		switch {
		case c.Done:
			return "done"
		case c.Kind == provisioning.Transient:
			return "transient (503)"
		case c.Kind == provisioning.Refused:
			return "`" + string(c.Code) + "`, refused"
		}
		return "`" + string(c.Code) + "`, misconfigured (503, alerts)"
	}
	var b strings.Builder
	b.WriteString(beginMarker + "\n")
	b.WriteString("| Helix code | meaning | add (ORDER) | edit (CHANGE) | remove (CANCEL) |\n|---|---|---|---|---|\n")
	row := func(code, what string, err error) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", code, what, cell(Add, err), cell(Edit, err), cell(Remove, err))
	}
	for _, r := range codes {
		row(fmt.Sprint(r.code), r.what, &helixapi.APIError{HTTPStatus: 400, Codes: []int{r.code}})
	}
	for _, o := range others(t) {
		row("—", o.what, o.err)
	}
	b.WriteString(endMarker + "\n")
	return b.String()
}

// TestREADME: the README's Helix code table is the one Classify makes.
func TestREADME(t *testing.T) {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i, j := strings.Index(text, beginMarker), strings.Index(text, endMarker)
	if i < 0 || j < i {
		t.Fatalf("docs/helix.md has no Helix code table between %q and %q", beginMarker, endMarker)
	}
	table := renderTable(t)
	current := text[i : j+len(endMarker)+1]
	if current == table {
		return
	}
	if !*update {
		t.Fatalf("docs/helix.md's Helix code table is stale; run go test ./internal/helix -update\nwant:\n%s", table)
	}
	if err := os.WriteFile(readme, []byte(text[:i]+table+text[j+len(endMarker)+1:]), 0o644); err != nil {
		t.Fatal(err)
	}
}
