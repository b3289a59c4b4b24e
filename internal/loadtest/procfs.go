package loadtest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: fixed at 100 by
// the Linux ABI, whatever the kernel's own tick.
const userHZ = 100

// sampler watches one process during a phase: its peak resident memory and
// the CPU time it used.
type sampler struct {
	pid      int
	hwmReset bool // VmHWM was reset at the start, so it is this phase's peak
	cpu0     time.Duration
	stop     chan struct{}
	wg       sync.WaitGroup

	mu     sync.Mutex
	peakKB int64
	// at the polled peak: resident anonymous memory (heap, stacks) and
	// resident pages of files (the program's own code and data, mostly)
	anonKB, fileKB int64
}

// sample starts watching pid: it resets the process's peak RSS (VmHWM)
// where the kernel allows, and polls VmRSS too, every 20 ms, in case it
// does not.
func sample(pid int) *sampler {
	s := &sampler{pid: pid, stop: make(chan struct{})}
	s.hwmReset = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
	s.cpu0, _ = cpuTime(pid)
	s.poll()
	s.wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				s.poll()
			}
		}
	})
	return s
}

func (s *sampler) poll() {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return
	}
	kb, err := parseStatusKB(b, "VmRSS")
	if err != nil {
		return
	}
	anon, _ := parseStatusKB(b, "RssAnon")
	file, _ := parseStatusKB(b, "RssFile")
	s.mu.Lock()
	if kb > s.peakKB {
		s.peakKB, s.anonKB, s.fileKB = kb, anon, file
	}
	s.mu.Unlock()
}

// split is the resident anonymous and file memory at the polled peak.
func (s *sampler) split() (anonKB, fileKB int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.anonKB, s.fileKB
}

// finish stops watching and returns the peak RSS in KiB (0 when unknown)
// and the CPU time used since sample.
func (s *sampler) finish() (peakKB int64, cpu time.Duration) {
	close(s.stop)
	s.wg.Wait()
	s.poll()
	s.mu.Lock()
	peakKB = s.peakKB
	s.mu.Unlock()
	if s.hwmReset {
		if hwm, err := statusKB(s.pid, "VmHWM"); err == nil {
			peakKB = max(peakKB, hwm)
		}
	}
	if c, err := cpuTime(s.pid); err == nil {
		cpu = c - s.cpu0
	}
	return peakKB, cpu
}

func statusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, field)
}

// parseStatusKB reads a "Field:   1234 kB" line of /proc/<pid>/status.
func parseStatusKB(status []byte, field string) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte(field+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("/proc status: %s is %q, not a size in kB", field, bytes.TrimSpace(rest))
		}
		return strconv.ParseInt(string(f[0]), 10, 64)
	}
	return 0, fmt.Errorf("/proc status: no %s line", field)
}

func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU adds utime and stime of /proc/<pid>/stat (fields 14 and 15;
// the command name in parentheses may itself hold spaces).
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the name, want at least 13", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: CPU time %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}
