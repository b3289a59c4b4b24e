package loadtest

import (
	"os"
	"testing"
	"time"
)

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\twebhook\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n")
	tests := []struct {
		field   string
		want    int64
		wantErr bool
	}{
		{"VmRSS", 20480, false},
		{"VmHWM", 40960, false},
		{"Threads", 0, true}, // not a size
		{"VmSwap", 0, true},  // absent
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			got, err := parseStatusKB(status, tt.field)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %d, %v; want %d (error %t)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		stat    string
		want    time.Duration
		wantErr bool
	}{
		{"plain", "123 (webhook) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0", 3 * time.Second, false},
		{"spaces and parens in the name", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0", 30 * time.Millisecond, false},
		{"no name", "123 S 1", 0, true},
		{"too short", "1 (x) S 1 2 3", 0, true},
		{"not a number", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 ab 2 0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.stat))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %s, %v; want %s (error %t)", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSampleOwnProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc here:", err)
	}
	s := sample(os.Getpid())
	// Work until the kernel has counted some CPU time (it counts in 10 ms
	// ticks), bounded in rounds rather than in time.
	start, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	x := 0
	for round := 0; round < 1000; round++ {
		for i := range 1_000_000 {
			x += i % 7
		}
		if now, err := cpuTime(os.Getpid()); err == nil && now > start {
			break
		}
	}
	_ = x
	peak, cpu := s.finish()
	if peak <= 0 {
		t.Fatalf("peak RSS %d KiB; want more than 0", peak)
	}
	if cpu <= 0 {
		t.Fatalf("CPU %s after busy work; want more than 0", cpu)
	}
}
