package loadtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStopEndsTheProcessGroup(t *testing.T) {
	dir := t.TempDir()
	// The shell starts a child of its own: stop must end both.
	p, err := startProcess("sleeper", dir, nil, "/bin/sh", "-c", "sleep 60 & echo child $!; wait")
	if err != nil {
		t.Fatal(err)
	}
	child := 0
	ready := p.waitReady(context.Background(), 10*time.Second, func(context.Context) error {
		b, _ := os.ReadFile(p.logPath)
		if _, err := fmt.Sscanf(string(b), "child %d", &child); err != nil {
			return errors.New("not yet")
		}
		return nil
	})
	if ready != nil {
		t.Fatal(ready)
	}
	p.stop(5 * time.Second)
	if !p.exited() {
		t.Fatal("the shell is still running after stop")
	}
	// The child is not ours to reap: it is dead once its /proc entry is
	// gone or a zombie (Z). Poll, bounded in count, for the signal to land.
	for i := 0; !dead(child); i++ {
		if i == 500 {
			t.Fatalf("the shell's child %d survived stop", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dead reports whether pid has exited (gone, or a zombie awaiting its reaper).
func dead(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && strings.HasPrefix(string(b[i+1:]), " Z")
}

func TestWaitReadyReportsAnExit(t *testing.T) {
	p, err := startProcess("crasher", t.TempDir(), nil, "/bin/sh", "-c", "echo cannot bind the port; exit 3")
	if err != nil {
		t.Fatal(err)
	}
	err = p.waitReady(context.Background(), 10*time.Second, func(context.Context) error { return errors.New("never ready") })
	if err == nil || !strings.Contains(err.Error(), "crasher exited") || !strings.Contains(err.Error(), "cannot bind the port") {
		t.Fatalf("err = %v; want the exit and the end of the log", err)
	}
}

func TestStartProcessMissingProgram(t *testing.T) {
	if _, err := startProcess("ghost", t.TempDir(), nil, "/no/such/program"); err == nil {
		t.Fatal("a missing program started")
	}
}

// A stack whose first program fails to start stops what it started and
// says why: an error, never a panic (the failed start used to call stop
// on the nil stack its error return had set).
func TestStartStackFailureIsAnError(t *testing.T) {
	cfg := defaults
	cfg.RedisServer = "/bin/false"
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := startStack(ctx, cfg, t.TempDir(), t.TempDir(), binaries{})
	if err == nil || st != nil {
		t.Fatalf("startStack with a redis-server that exits: %v, %v; want an error", st, err)
	}
}
