package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// process is a program this tool started, with its output in a log file.
// It runs in its own process group, so that stop reaches anything it
// started, and it is killed by the kernel if this tool dies (Pdeathsig).
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when it has exited
	waitErr error         // how it exited; read after done
}

func startProcess(name, dir string, env []string, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating the log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, and SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
}

// exitError says that the process ended, how, and what it said last.
func (p *process) exitError() error {
	<-p.done
	return fmt.Errorf("%s exited (%v); the end of its log (%s):\n%s", p.name, p.waitErr, p.logPath, p.tail(15))
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	defer f.Close()
	const window = 8 << 10
	if st, err := f.Stat(); err == nil && st.Size() > window {
		_, _ = f.Seek(st.Size()-window, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// waitReady polls probe until it succeeds, the process exits, ctx ends or
// limit passes.
func (p *process) waitReady(ctx context.Context, limit time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := probe(pctx)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return p.exitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (last probe: %v); the end of its log:\n%s", p.name, limit, err, p.tail(15))
		case <-tick.C:
		}
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// modulePath is the module whose programs are built.
const modulePath = "github.com/banking-marketplace/webhook"

// moduleRoot finds the webhook module's folder from the working directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("running go env GOMOD (is Go on PATH?): %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run loadtest from the webhook repository")
	}
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", gomod, err)
	}
	if !bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) {
		return "", fmt.Errorf("%s is not the %s module: run loadtest from the webhook repository", gomod, modulePath)
	}
	return filepath.Dir(gomod), nil
}

// binaries are the programs built for the run.
type binaries struct{ webhook, floor string }

// build compiles the service and the floor into dir, both as the
// Dockerfile builds the service (static, trimmed, stripped): resident
// memory counts the program's own pages, so both are measured as
// deployed.
// With profiling, both are built with -tags pprof (PPROF_ADDR serves the
// Go profiles).
func build(ctx context.Context, module, dir string, profiling bool) (binaries, error) {
	b := binaries{webhook: filepath.Join(dir, "webhook"), floor: filepath.Join(dir, "floor")}
	for _, t := range []struct{ out, pkg string }{{b.webhook, "./cmd/webhook"}, {b.floor, "./cmd/floor"}} {
		args := []string{"build", "-trimpath", "-ldflags", "-s -w", "-o", t.out}
		if profiling {
			args = append(args, "-tags", "pprof")
		}
		cmd := exec.CommandContext(ctx, "go", append(args, t.pkg)...)
		cmd.Dir = module
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, out)
		}
	}
	return b, nil
}
