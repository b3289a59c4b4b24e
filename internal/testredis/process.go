package testredis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// startTimeout bounds how long a redis-server may take to answer. It is
// generous because the machines that run the tests are shared and slow at
// times; a healthy start takes milliseconds.
const startTimeout = 10 * time.Second

// errPortTaken reports that another server answers on the port chosen for a
// new redis-server: a race with another process that took the free port.
var errPortTaken = errors.New("port taken by another server")

// process is a redis-server child process on 127.0.0.1, without
// persistence, with its log file in its directory.
type process struct {
	bin    string
	addr   string
	log    string
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process has ended
	err    error         // Wait's result, set before exited is closed
}

// startProcess starts bin on 127.0.0.1:port with its files in dir, and
// extra arguments, and waits until it answers, as itself, on that port.
func startProcess(bin, port, dir string, extra ...string) (*process, error) {
	p := &process{
		bin:    bin,
		addr:   net.JoinHostPort("127.0.0.1", port),
		log:    filepath.Join(dir, "redis.log"),
		exited: make(chan struct{}),
	}
	args := []string{"--bind", "127.0.0.1", "--port", port,
		"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", p.log}
	p.cmd = exec.Command(bin, append(args, extra...)...)
	p.cmd.SysProcAttr = sysProcAttr()
	started := make(chan error, 1)
	go func() {
		// Where sysProcAttr asks the kernel to kill the child with its
		// parent (Linux), the parent is the OS thread that started it.
		// Keeping this goroutine on that thread until the child ends means
		// the thread cannot end first; the child still dies with the test
		// binary when a timeout or a panic ends it without cleanups.
		runtime.LockOSThread()
		if err := p.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	if err := p.waitReady(startTimeout); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startOnFreePort starts bin on a free loopback port, trying another port
// when the one chosen was taken before redis-server could bind it.
func startOnFreePort(bin, dir string, extra ...string) (*process, string, error) {
	return startOnPort(freePort, bin, dir, extra...)
}

// startOnPort starts bin on a port that pick chose, trying another when
// it was taken before redis-server could bind it.
func startOnPort(pick func() (string, error), bin, dir string, extra ...string) (*process, string, error) {
	var err error
	for range 3 {
		var port string
		if port, err = pick(); err != nil {
			return nil, "", err
		}
		var p *process
		if p, err = startProcess(bin, port, dir, extra...); err == nil {
			return p, port, nil
		}
	}
	return nil, "", err
}

// waitReady polls until the server on p.addr answers with p's process id.
// Checking the id, not only that the port answers, catches the race in
// which another server took the port: ours then exits, unable to bind, and
// a plain PING would be answered by the other one.
func (p *process) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		pid, err := serverPID(p.addr)
		if err == nil {
			if pid == p.cmd.Process.Pid {
				return nil
			}
			return fmt.Errorf("%s on %s: %w (pid %d)", p.bin, p.addr, errPortTaken, pid)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s on %s exited before answering (%v)%s", p.bin, p.addr, p.err, p.logTail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s on %s did not answer within %v: %v%s", p.bin, p.addr, limit, err, p.logTail())
		}
	}
}

// stop kills the process, as a crash would, and waits until it has ended.
// It is safe to call more than once.
func (p *process) stop() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// logTail is the end of the server's log, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	const max = 600
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "; its log ends:\n" + strings.TrimRight(string(b), "\n")
}

// serverPID asks the Redis on addr for its process id (INFO server). It
// speaks the protocol by hand so that probing a server that is still
// starting neither retries nor logs.
func serverPID(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := io.WriteString(c, "INFO server\r\n"); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	head = strings.TrimSpace(head)
	n, err := strconv.Atoi(strings.TrimPrefix(head, "$"))
	if !strings.HasPrefix(head, "$") || err != nil || n < 0 || n > 1<<20 {
		return 0, fmt.Errorf("INFO server answered %q", head) // -LOADING, -NOAUTH, ...
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(body), "\r\n") {
		if v, ok := strings.CutPrefix(line, "process_id:"); ok {
			return strconv.Atoi(v)
		}
	}
	return 0, errors.New("INFO server names no process_id")
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
