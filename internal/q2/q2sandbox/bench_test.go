package q2sandbox

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/sandbox"
)

// benchSizes are the numbers of users the benchmarks run at: a call must
// cost the same at both. The million runs only without -short.
var benchSizes = []int{1_000, 1_000_000}

// benchSandbox returns the handler of a sandbox whose Q2 holds n users
// (and their customers), built through the directory rather than n HTTP
// calls, and a live token.
func benchSandbox(b *testing.B, n int) (http.Handler, string) {
	b.Helper()
	if n > 1_000 && testing.Short() {
		b.Skip("a million users only without -short")
	}
	sb := New(Config{})
	h := sandbox.New(sb).Handler() // before the users: New resets its parts
	now := time.Now().UTC()
	for i := range n {
		in := enrollmentIn{LogonName: fmt.Sprintf("user%d", i), FirstName: "A", LastName: "B",
			SSN: fmt.Sprintf("%09d", i), PrimaryCIF: fmt.Sprintf("cif%d", i)}
		if err := sb.dir.enroll(&in, now); err != nil {
			b.Fatal(err)
		}
	}
	sb.tokens["bench"] = now.Add(time.Hour)
	return h, "bench"
}

// serve sends one call straight to the handler: what is measured is the
// sandbox's cost, not the loopback's.
func serve(b *testing.B, h http.Handler, tok, method, path, body string, want int) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s, want %d", method, path, w.Code, w.Body, want)
	}
}

// benchRoute measures POST path on sandboxes of each of benchSizes
// users, the i-th call with body(i, n).
func benchRoute(b *testing.B, path string, body func(i, n int) string) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			h, tok := benchSandbox(b, n)
			i := 0
			for b.Loop() {
				i++
				serve(b, h, tok, "POST", path, body(i, n), http.StatusOK)
			}
		})
	}
}

func BenchmarkLookupUser(b *testing.B) {
	benchRoute(b, "/v2/LookupUser", func(i, n int) string { return fmt.Sprintf(`{"LoginName":"USER%d"}`, i%n) })
}

func BenchmarkLookupCustomer(b *testing.B) {
	benchRoute(b, "/v2/LookupCustomer", func(i, n int) string { return fmt.Sprintf(`{"TaxID":"%09d"}`, i%n) })
}

func BenchmarkEnrollment(b *testing.B) {
	benchRoute(b, "/v2/Enrollment", func(i, _ int) string {
		return fmt.Sprintf(`{"LogonName":"new%d","FirstName":"A","LastName":"B","SSN":"1"}`, i)
	})
}
