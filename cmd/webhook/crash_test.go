package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/banking-marketplace/webhook/internal/helix/helixsandbox"
	"github.com/banking-marketplace/webhook/internal/logctx/logtest"
	"github.com/banking-marketplace/webhook/internal/q2/q2sandbox"
	"github.com/banking-marketplace/webhook/internal/sandbox"
	"github.com/banking-marketplace/webhook/internal/testredis"
)

// binary builds the real webhook binary once per test run.
func binary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the tests that build and kill the binary")
	}
	path := filepath.Join(t.TempDir(), "webhook")
	out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return path
}

// process is the real binary, running.
type process struct {
	cmd    *exec.Cmd
	logs   *syncBuffer
	stdout *syncBuffer // the log lines alone
	url    string
}

func startBinary(t *testing.T, bin string, env map[string]string) *process {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := &process{cmd: exec.Command(bin, "serve"), logs: &syncBuffer{}, stdout: &syncBuffer{}, url: "http://" + addr}
	p.cmd.Env = append(os.Environ(), "WEBHOOK_ADDR="+addr)
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = io.MultiWriter(p.logs, p.stdout), p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		logtest.CheckLines(t, p.stdout.String())
	})
	eventually(t, 15*time.Second, "the binary to listen", func() bool {
		resp, err := http.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return p
}

// The service killed (SIGKILL) while Q2 is slowly enrolling, restarted, and
// the same delivery sent again until it is answered: success, with exactly
// one Q2 user for the subscription.
func TestCrashDuringEnrollment(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	redis := testredis.Start(t) // outlives the killed process, as Redis would
	sb, q2 := startSandbox(t, q2sandbox.Config{})
	env := q2Env(q2, redis.URL())
	env["PROCESS_TIMEOUT"] = "2s" // lease 3.5s: the test waits less for takeover
	body := readFixture(t, "subscription-order.json")
	id := http.Header{"Webhook-Id": {"msg_crash"}}

	first := startBinary(t, bin, env)
	if err := sb.SetFault(sandbox.Fault{Route: "Enrollment", Times: 1, DelayMS: 1000}); err != nil {
		t.Fatal(err)
	}
	go func() {
		req, _ := http.NewRequest(http.MethodPost, first.url+"/marketplace/p", bytes.NewReader(body))
		req.Header = id.Clone()
		if resp, err := http.DefaultClient.Do(req); err == nil { // the process dies: an error is expected
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "the enrollment to reach Q2", func() bool { return sb.Stats().Calls["Enrollment"] == 1 })
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()

	second := startBinary(t, bin, env)
	var last response
	statuses := map[int]int{}
	eventually(t, 20*time.Second, "the delivery to be answered after the restart", func() bool {
		last = post(t, second.url+"/marketplace/p", body, id)
		statuses[last.status]++
		if last.status == 409 || last.status == 503 {
			time.Sleep(200 * time.Millisecond)
			return false
		}
		return true
	})
	rep := wantReply(t, last, 200, "")
	if _, err := strconv.Atoi(rep.AccountIdentifier); err != nil {
		t.Errorf("accountIdentifier %q", rep.AccountIdentifier)
	}
	if st := sb.Stats(); st.Calls["Enrollment"] != 1 || st.Users != 1 {
		t.Errorf("Q2 after the crash: %+v, want one enrollment and one user", st)
	}
	t.Logf("copies after the restart, by status: %v", statuses)

	// And once more: the answered delivery is replayed.
	if r := post(t, second.url+"/marketplace/p", body, id); r.header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(r.body, last.body) {
		t.Errorf("after completion: %d %s", r.status, r.body)
	}
}

// A plan of two steps (q2, then helix) with the service killed between
// them: the Q2 user is enrolled and recorded, the Helix call is in flight.
// After a restart, a copy completes the plan once: one enrollment, one
// entitlement.
func TestCrashBetweenSteps(t *testing.T) {
	t.Parallel()
	bin := binary(t)
	redis := testredis.Start(t)
	sb, url := startSandbox(t, q2sandbox.Config{})
	env := q2Env(url, redis.URL())
	env["PROCESS_TIMEOUT"] = "2s"
	env["PRODUCTS_FILE"] = "../../products.example.yaml"
	body := readFixture(t, "../../../fixtures/business-access/01-order.json")
	id := http.Header{"Webhook-Id": {"msg_crash_between_steps"}}
	target := "/marketplace/business-access"

	first := startBinary(t, bin, env)
	if err := sb.SetFault(sandbox.Fault{Route: "helix.addEntitlement", Times: 1, DelayMS: 1000, Status: 503}); err != nil {
		t.Fatal(err)
	}
	go func() {
		req, _ := http.NewRequest(http.MethodPost, first.url+target, bytes.NewReader(body))
		req.Header = id.Clone()
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	eventually(t, 5*time.Second, "the plan to reach its helix step", func() bool { return sb.Stats().Calls["helix.addEntitlement"] == 1 })
	if err := first.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = first.cmd.Wait()

	second := startBinary(t, bin, env)
	var last response
	eventually(t, 20*time.Second, "the delivery to be answered after the restart", func() bool {
		last = post(t, second.url+target, body, id)
		if last.status == 409 || last.status == 503 {
			time.Sleep(200 * time.Millisecond)
			return false
		}
		return true
	})
	wantReply(t, last, 200, "")
	st := sb.Stats()
	if st.Calls["Enrollment"] != 1 || st.Users != 1 {
		t.Errorf("Q2 after the crash: %d enrollments, %d users; want 1 and 1", st.Calls["Enrollment"], st.Users)
	}
	if h, ok := st.Parts["helix"].(helixsandbox.Stats); !ok || h.Entitlements != 1 {
		t.Errorf("Helix after the crash: %+v, want 1 entitlement", st.Parts["helix"])
	}
}
