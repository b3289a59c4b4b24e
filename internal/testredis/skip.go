package testredis

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// inCI reports whether the tests run in CI (CI=true, as GitHub Actions,
// GitLab and .ci/run set it): there a test that needs redis-server fails
// when it is missing, since a CI that skips them proves nothing about Redis.
func inCI(getenv func(string) string) bool {
	ci, _ := strconv.ParseBool(getenv("CI"))
	return ci
}

// skips counts the tests of this test binary skipped for want of a real
// Redis, by reason, for the line Main writes at the end.
type skips struct {
	mu  sync.Mutex
	why map[string]int
}

func (s *skips) add(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.why == nil {
		s.why = make(map[string]int)
	}
	s.why[why]++
}

// report writes one line, when any test skipped: how many and why.
func (s *skips) report(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reasons := make([]string, 0, len(s.why))
	total := 0
	for why, n := range s.why {
		reasons = append(reasons, why)
		total += n
	}
	if total == 0 {
		return
	}
	sort.Strings(reasons)
	if len(reasons) > 1 {
		for i, why := range reasons {
			reasons[i] = fmt.Sprintf("%s (%d)", why, s.why[why])
		}
	}
	tests := "tests"
	if total == 1 {
		tests = "test"
	}
	fmt.Fprintf(w, "testredis: %d real-Redis %s skipped: %s (install redis-server or set REDIS_URL to run them; with CI=true they fail instead)\n",
		total, tests, strings.Join(reasons, "; "))
}

// missing skips t for want of a real Redis (why), or fails it under
// CI=true. The skip is counted for Main's line, so a package whose tests
// may skip must call Main from its TestMain.
func missing(t testing.TB, why string) {
	t.Helper()
	missingIn(t, why, os.Getenv, shared)
}

func missingIn(t testing.TB, why string, getenv func(string) string, p *pool) {
	t.Helper()
	if inCI(getenv) {
		t.Fatalf("testredis: %s, and CI=true: real-Redis tests must run in CI, not skip; install redis-server (apt-get install redis-server)", why)
		return
	}
	if !p.running() {
		t.Fatal(errNoMain)
		return
	}
	p.skips.add(why)
	t.Skip("testredis: skipping a real-Redis test: " + why)
}

// noRedisServer is why a test that starts redis-server cannot.
const noRedisServer = "redis-server is not on PATH"

// Binary returns the path of redis-server for a test that starts its own
// processes (replicas, a Sentinel), or skips t (fails it under CI=true)
// when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	bin, ok := realAvailable()
	if !ok {
		missing(t, noRedisServer)
	}
	return bin
}
