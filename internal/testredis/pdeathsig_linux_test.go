package testredis

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestServerDiesWithTestBinary: a test binary that dies without its
// cleanups (a -timeout panic, os.Exit) takes its redis-server with it.
func TestServerDiesWithTestBinary(t *testing.T) {
	if dir := os.Getenv("TESTREDIS_ORPHAN_DIR"); dir != "" {
		bin, err := exec.LookPath("redis-server")
		if err != nil {
			os.Exit(2)
		}
		p, _, err := startOnFreePort(bin, dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(2)
		}
		fmt.Println(p.addr)
		os.Exit(3) // no cleanups, as after a -timeout panic
	}
	needRedisServer(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestServerDiesWithTestBinary$")
	cmd.Env = append(os.Environ(), "TESTREDIS_ORPHAN_DIR="+t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr, _ := bufio.NewReader(out).ReadString('\n')
	addr = strings.TrimSpace(addr)
	_ = cmd.Wait()
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("the helper test binary printed %q, want the address of its redis-server", addr)
	}
	// The kernel kills the orphan as the helper exits; give it a moment.
	for range 100 {
		if _, err := serverPID(addr); err != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	pid, err := serverPID(addr)
	if err != nil {
		return
	}
	if p, err := os.FindProcess(pid); err == nil {
		_ = p.Kill()
	}
	t.Errorf("redis-server (pid %d) on %s outlived the test binary that started it", pid, addr)
}
