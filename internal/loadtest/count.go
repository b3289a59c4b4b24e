package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// countRow is what one kind of request cost a target, request by request,
// sent one at a time: outside calls by route and Redis traffic.
type countRow struct {
	Target, Product, Kind string // Kind: "new" (an ORDER) or "copy" (of it)
	Calls                 []map[string]int
	Redis                 []traffic
}

// The kinds of request counted.
const (
	kindNew  = "new ORDER"
	kindCopy = "copy"
)

// settleWait is how long the count waits after a reply before it marks the
// end of a request: work a target does after replying is its request's.
const settleWait = 30 * time.Millisecond

// count sends, to each target and for each product, one warm-up ORDER
// (its token fetch, its scripts loaded) and then cfg.Counts ORDERs each
// followed by a copy of it, one by one, and counts what each cost.
func (b *bench) count(ctx context.Context) ([]countRow, error) {
	st := b.st
	client := &http.Client{Timeout: b.cfg.RequestTimeout}
	defer client.CloseIdleConnections()
	var out []countRow
	for _, t := range st.targets {
		if err := st.reset(ctx); err != nil {
			return out, err
		}
		m, err := startMonitor(ctx, st.redisAddr)
		if err != nil {
			return out, err
		}
		for _, p := range []struct {
			name string
			tmpl *template
		}{{"q2", b.tmpl.q2}, {"business access", b.tmpl.ba}, {"qbd connect", b.tmpl.qbd}} {
			url := t.url + "/marketplace/" + p.tmpl.extension
			if err := send(ctx, client, url, p.tmpl.order(), false); err != nil { // warm-up
				m.close()
				return out, fmt.Errorf("counting %s at the %s: %w", p.name, t.name, err)
			}
			if _, err := m.next(ctx); err != nil {
				m.close()
				return out, err
			}
			rows := [2]countRow{{Target: t.name, Product: p.name, Kind: kindNew}, {Target: t.name, Product: p.name, Kind: kindCopy}}
			for range b.cfg.Counts {
				body := p.tmpl.order()
				for i, isCopy := range []bool{false, true} {
					c, tr, err := b.measure(ctx, m, func() error { return send(ctx, client, url, body, isCopy) })
					if err != nil {
						m.close()
						return out, fmt.Errorf("counting %s at the %s: %w", p.name, t.name, err)
					}
					rows[i].Calls, rows[i].Redis = append(rows[i].Calls, c), append(rows[i].Redis, tr)
				}
			}
			out = append(out, rows[:]...)
		}
		m.close()
	}
	return out, nil
}

// measure runs do and returns the outside calls and Redis traffic it
// caused.
func (b *bench) measure(ctx context.Context, m *monitor, do func() error) (map[string]int, traffic, error) {
	before, err := b.st.calls(ctx)
	if err != nil {
		return nil, traffic{}, err
	}
	if err := do(); err != nil {
		return nil, traffic{}, err
	}
	time.Sleep(settleWait)
	tr, err := m.next(ctx)
	if err != nil {
		return nil, traffic{}, err
	}
	after, err := b.st.calls(ctx)
	if err != nil {
		return nil, traffic{}, err
	}
	calls := delta(before, after)
	delete(calls, "token") // one per process (and sandbox reset), not per request
	return calls, tr, nil
}

// send posts one delivery and wants a 200 success, replayed for a copy.
func send(ctx context.Context, client *http.Client, url string, body []byte, isCopy bool) error {
	var buf bytes.Buffer
	r, err := post(ctx, client, url, body, &buf)
	switch {
	case err != nil:
		return err
	case r.status != http.StatusOK || !r.ok:
		return fmt.Errorf("POST %s answered %d %s; want 200 success", url, r.status, buf.String())
	case isCopy && !r.replayed:
		return fmt.Errorf("a copy to %s was not answered Idempotent-Replayed", url)
	}
	return nil
}

// calls is the median count of each route over the requests.
func (c countRow) calls() map[string]int {
	routes := map[string]bool{}
	for _, m := range c.Calls {
		for r := range m {
			routes[r] = true
		}
	}
	out := map[string]int{}
	for r := range routes {
		n := make([]int, len(c.Calls))
		for i, m := range c.Calls {
			n[i] = m[r]
		}
		if v := median(n); v != 0 {
			out[r] = v
		}
	}
	return out
}

// roundTrips and commands are the medians over the requests, with the
// range seen.
func (c countRow) roundTrips() (med, lo, hi int) {
	return spread(c.Redis, func(t traffic) int { return t.RoundTrips })
}

func (c countRow) commands() (med, lo, hi int) {
	return spread(c.Redis, func(t traffic) int { return t.Commands })
}

func spread(ts []traffic, f func(traffic) int) (med, lo, hi int) {
	n := make([]int, len(ts))
	for i, t := range ts {
		n[i] = f(t)
	}
	if len(n) == 0 {
		return 0, 0, 0
	}
	return median(n), slices.Min(n), slices.Max(n)
}

// median is the middle value (the lower of the two middle ones).
func median(n []int) int {
	if len(n) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(n))
	return s[(len(s)-1)/2]
}

// callList writes calls as "Enrollment 1, LookupUser 1", sorted; "none".
func callList(calls map[string]int) string {
	if len(calls) == 0 {
		return "none"
	}
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(calls)) {
		parts = append(parts, fmt.Sprintf("%s %d", r, calls[r]))
	}
	return strings.Join(parts, ", ")
}

func total(calls map[string]int) int {
	n := 0
	for _, v := range calls {
		n += v
	}
	return n
}

// withRange is "7" or "7 (6–9)" when the requests differed.
func withRange(med, lo, hi int) string {
	if lo == hi {
		return fmt.Sprint(med)
	}
	return fmt.Sprintf("%d (%d–%d)", med, lo, hi)
}

// printCounts writes one line per target, product and kind.
func printCounts(w io.Writer, rows []countRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tproduct\trequest\toutside calls\tredis round trips\tredis commands\t")
	for _, c := range rows {
		calls := c.calls()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d: %s\t%s\t%s\t\n", c.Target, c.Product, c.Kind, total(calls), callList(calls),
			withRange(c.roundTrips()), withRange(c.commands()))
	}
	_ = tw.Flush()
	for _, c := range rows {
		if c.Product != "q2" || len(c.Redis) == 0 {
			continue
		}
		fmt.Fprintf(w, "  %s %s, the last one's round trips: %s\n", c.Target, c.Kind, strings.Join(c.Redis[len(c.Redis)-1].Trace, "; "))
	}
}
