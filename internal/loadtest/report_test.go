package loadtest

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRowNon2xx(t *testing.T) {
	tests := []struct {
		status map[int]int
		want   string
	}{
		{map[int]int{200: 5}, "0"},
		{map[int]int{200: 5, 503: 2, 0: 1, 409: 3}, "err:1 409:3 503:2"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := (row{outcome: outcome{Status: tt.status}}).non2xx(); got != tt.want {
				t.Fatalf("got %q; want %q", got, tt.want)
			}
		})
	}
}

func TestPrintRatios(t *testing.T) {
	mk := func(round int, target string, elapsed time.Duration, lat time.Duration, cpu time.Duration, rss int64, status map[int]int, enroll int) row {
		return row{Round: round, Target: target, Phase: phaseStorm, Load: load{100, 10},
			outcome:     outcome{Sent: 100, Elapsed: elapsed, Latencies: []time.Duration{lat}, Status: status},
			Enrollments: enroll, CPU: cpu, RedisCPU: cpu / 10, PeakRSSKB: rss}
	}
	rows := []row{
		// The service: 100 req/s, then 50; the floor: 200, then 100.
		mk(1, "service", time.Second, 4*time.Millisecond, 100*time.Millisecond, 3000, map[int]int{200: 99, 503: 1}, 1),
		mk(1, "floor", 500*time.Millisecond, 2*time.Millisecond, 50*time.Millisecond, 1000, map[int]int{200: 100}, 1),
		mk(2, "service", 2*time.Second, 4*time.Millisecond, 100*time.Millisecond, 3000, map[int]int{200: 100}, 2),
		mk(2, "floor", time.Second, 2*time.Millisecond, 50*time.Millisecond, 1000, map[int]int{200: 100}, 1),
	}
	var b strings.Builder
	printRatios(&b, rows, phaseNames)
	out := b.String()
	// Means: service 75 req/s, floor 150: 0.50; 2xx/s 74.5 and 150: 0.50;
	// latency, CPU 2.00; Redis CPU per request 100 and 50 µs; RSS 3.00.
	var storm []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == phaseStorm {
			storm = f
		}
	}
	want := []string{phaseStorm, "75", "150", "0.50", "0.50", "2.00", "2.00", "2.00", "100µs|50µs", "3.00"}
	if len(storm) < len(want) || !slices.Equal(storm[:len(want)], want) {
		t.Errorf("storm line %q; want it to start %q", storm, want)
	}
	for _, want := range []string{"service [1 2], floor [1 1]", "5xx: service 1, floor 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("ratios lack %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, phaseNew) {
		t.Errorf("a phase without rows is printed:\n%s", out)
	}
}
