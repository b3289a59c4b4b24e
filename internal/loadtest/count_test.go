package loadtest

import (
	"strings"
	"testing"
)

func TestCountRowMedians(t *testing.T) {
	c := countRow{Target: "service", Product: "q2", Kind: kindNew,
		Calls: []map[string]int{
			{"Enrollment": 2, "LookupUser": 1}, // the first after a reset: its token refused once
			{"Enrollment": 1, "LookupUser": 1},
			{"Enrollment": 1, "LookupUser": 1, "DeleteUser": 1},
		},
		Redis: []traffic{{RoundTrips: 8, Commands: 49}, {RoundTrips: 11, Commands: 52}, {RoundTrips: 8, Commands: 49, Trace: []string{"get k"}}},
	}
	if got := callList(c.calls()); got != "Enrollment 1, LookupUser 1" {
		t.Errorf("calls %q; want the median of each route", got)
	}
	if got := withRange(c.roundTrips()); got != "8 (8–11)" {
		t.Errorf("round trips %q", got)
	}
	if got := withRange(c.commands()); got != "49 (49–52)" {
		t.Errorf("commands %q", got)
	}
	var b strings.Builder
	printCounts(&b, []countRow{c, {Target: "floor", Product: "q2", Kind: kindCopy, Calls: []map[string]int{{}}, Redis: []traffic{{RoundTrips: 1, Commands: 1}}}})
	for _, want := range []string{"2: Enrollment 1, LookupUser 1", "0: none", "service new ORDER, the last one's round trips: get k"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		n    []int
		want int
	}{{nil, 0}, {[]int{3}, 3}, {[]int{5, 1, 3}, 3}, {[]int{4, 1, 3, 2}, 2}}
	for _, tt := range tests {
		if got := median(tt.n); got != tt.want {
			t.Errorf("median(%v) = %d; want %d", tt.n, got, tt.want)
		}
	}
}
