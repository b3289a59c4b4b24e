package loadtest

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// row is one phase against one target in one round.
type row struct {
	Round  int
	Target string
	Phase  string
	Load   load
	outcome
	Enrollments int            // Enrollment calls the sandbox received during the phase
	Calls       map[string]int // the sandbox's calls during the phase, by route
	Redis       redisUse       // what Redis ran during the phase (INFO commandstats)
	PeakRSSKB   int64          // the target's peak resident memory during the phase
	AnonKB      int64          // of it at the polled peak: anonymous (heap, stacks, runtime)
	FileKB      int64          // and the program's file pages (code, read-only data)
	CPU         time.Duration
	RedisCPU    time.Duration // redis-server's CPU during the phase
}

// outsideCalls is the calls the sandbox received but token fetches (one
// per process and sandbox reset, not per request).
func (r row) outsideCalls() int {
	n := 0
	for route, c := range r.Calls {
		if route != "token" {
			n += c
		}
	}
	return n
}

// perRequest is n per request sent.
func (r row) perRequest(n int) float64 {
	if r.Sent == 0 {
		return 0
	}
	return float64(n) / float64(r.Sent)
}

func (r row) rps() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent) / r.Elapsed.Seconds()
}

// goodput is the 2xx replies per second: under overload, fast 503s inflate
// req/s but not this.
func (r row) goodput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.count2xx()) / r.Elapsed.Seconds()
}

func (r row) count2xx() int {
	n := 0
	for s, c := range r.Status {
		if s/100 == 2 {
			n += c
		}
	}
	return n
}

// count is the replies with a status in [lo, hi].
func (r row) count(lo, hi int) int {
	n := 0
	for s, c := range r.Status {
		if s >= lo && s <= hi {
			n += c
		}
	}
	return n
}

// non2xx lists the other statuses with their counts ("503:12 err:1"), or "0".
func (r row) non2xx() string {
	var parts []string
	for _, s := range slices.Sorted(maps.Keys(r.Status)) {
		if s/100 == 2 {
			continue
		}
		name := strconv.Itoa(s)
		if s == 0 {
			name = "err"
		}
		parts = append(parts, fmt.Sprintf("%s:%d", name, r.Status[s]))
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, " ")
}

func (r row) cpuPerRequest() time.Duration {
	if r.Sent == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Sent)
}

func (r row) redisCPUPerRequest() time.Duration {
	if r.Sent == 0 {
		return 0
	}
	return r.RedisCPU / time.Duration(r.Sent)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }
func mib(kb int64) string {
	if kb <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.1fMiB", float64(kb)/1024)
}

// printRows writes one line per phase run.
func printRows(w io.Writer, rows []row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\ttarget\tphase\tsent\tc\treq/s\t2xx/s\tp50\tp90\tp99\t2xx\tnon-2xx\tnot success\treplayed\tEnrollment\tcalls/req\tredis cmds/req\tscripts/req\tCPU/req\tredis CPU/req\tpeak RSS\tanon|file\t")
	for _, r := range rows {
		sent := strconv.Itoa(r.Sent)
		if r.Sent != r.Load.N {
			sent += "/" + strconv.Itoa(r.Load.N)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t%s|%s\t\n",
			r.Round, r.Target, r.Phase, sent, r.Load.C, r.rps(), r.goodput(),
			ms(percentile(r.Latencies, .50)), ms(percentile(r.Latencies, .90)), ms(percentile(r.Latencies, .99)),
			r.count2xx(), r.non2xx(), r.NotSuccess, r.Replayed, r.Enrollments,
			r.perRequest(r.outsideCalls()), r.perRequest(r.Redis.Commands), r.perRequest(r.Redis.Scripts),
			us(r.cpuPerRequest()), us(r.redisCPUPerRequest()), mib(r.PeakRSSKB), mib(r.AnonKB), mib(r.FileKB))
	}
	_ = tw.Flush()
}

// summary is one target's phase over every round: means of the rounds.
type summary struct {
	rps, goodput, p50, p99, cpu, rssKB float64
	redisCPU                           float64 // redis-server's CPU per request, ns
	calls, redis                       float64 // outside calls and Redis commands per request
	enrollments                        []int   // per round
	fivexx, status503                  int     // over the rounds
	rounds                             int
}

func summarize(rows []row) map[[2]string]*summary {
	out := map[[2]string]*summary{}
	for _, r := range rows {
		k := [2]string{r.Phase, r.Target}
		s := out[k]
		if s == nil {
			s = &summary{}
			out[k] = s
		}
		s.rounds++
		s.rps += r.rps()
		s.goodput += r.goodput()
		s.p50 += float64(percentile(r.Latencies, .50))
		s.p99 += float64(percentile(r.Latencies, .99))
		s.cpu += float64(r.cpuPerRequest())
		s.redisCPU += float64(r.redisCPUPerRequest())
		s.rssKB += float64(r.PeakRSSKB)
		s.calls += r.perRequest(r.outsideCalls())
		s.redis += r.perRequest(r.Redis.Commands)
		s.enrollments = append(s.enrollments, r.Enrollments)
		s.fivexx += r.count(500, 599)
		s.status503 += r.count(503, 503)
	}
	for _, s := range out {
		n := float64(s.rounds)
		s.rps, s.goodput, s.p50, s.p99, s.cpu, s.rssKB = s.rps/n, s.goodput/n, s.p50/n, s.p99/n, s.cpu/n, s.rssKB/n
		s.redisCPU /= n
		s.calls, s.redis = s.calls/n, s.redis/n
	}
	return out
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// printRatios writes, per phase, the service's means over the rounds
// divided by the floor's: throughput below 1 and latency, CPU and memory
// above 1 say how far the service is from the floor.
func printRatios(w io.Writer, rows []row, phases []string) {
	sums := summarize(rows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tservice req/s\tfloor req/s\treq/s s/f\t2xx/s s/f\tp50 s/f\tp99 s/f\tCPU/req s/f\tredis CPU/req s|f\tpeak RSS s/f\tservice RSS\tfloor RSS\tcalls/req s|f\tredis cmds/req s|f\tnotes\t")
	for _, ph := range phases {
		s, f := sums[[2]string{ph, "service"}], sums[[2]string{ph, "floor"}]
		if s == nil || f == nil {
			continue
		}
		var notes string
		switch ph {
		case phaseStorm:
			notes = fmt.Sprintf("Enrollment per round: service %v, floor %v; 5xx: service %d, floor %d", s.enrollments, f.enrollments, s.fivexx, f.fivexx)
		case phaseConns:
			notes = fmt.Sprintf("503: service %d, floor %d", s.status503, f.status503)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s|%s\t%s\t%s\t%s\t%.2f|%.2f\t%.2f|%.2f\t%s\t\n", ph, s.rps, f.rps,
			ratio(s.rps, f.rps), ratio(s.goodput, f.goodput), ratio(s.p50, f.p50), ratio(s.p99, f.p99), ratio(s.cpu, f.cpu),
			us(time.Duration(s.redisCPU)), us(time.Duration(f.redisCPU)), ratio(s.rssKB, f.rssKB),
			mib(int64(s.rssKB)), mib(int64(f.rssKB)), s.calls, f.calls, s.redis, f.redis, notes)
	}
	_ = tw.Flush()
}

// printPeaks writes each target's peak RSS over the rounds (the burst, the
// service's alone, left out).
func printPeaks(w io.Writer, rows []row) {
	peak := map[string]int64{}
	for _, r := range rows {
		if r.Phase != phaseBurst {
			peak[r.Target] = max(peak[r.Target], r.PeakRSSKB)
		}
	}
	if peak["service"] == 0 || peak["floor"] == 0 {
		return
	}
	fmt.Fprintf(w, "Peak RSS over the rounds: service %s, floor %s: %s\n", mib(peak["service"]), mib(peak["floor"]),
		ratio(float64(peak["service"]), float64(peak["floor"])))
}
