package replay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

var termIsTerminal = term.IsTerminal

// reporter prints one line per fixture as it finishes, keeps the counts and
// latencies the summary needs (8 bytes a request), and drives the progress
// bar. It is safe for concurrent use.
type reporter struct {
	mu        sync.Mutex
	format    string
	dry       bool // --dry-run: fixtures are checked, not sent
	total     int
	out       io.Writer
	bar       *progressbar.ProgressBar // nil unless stderr is a terminal
	counts    map[verdict]int
	replayed  int // replies answered from the receiver's store
	latencies []time.Duration
	writeErr  error
}

func newReporter(format string, total int, stdout, stderr io.Writer) *reporter {
	r := &reporter{format: format, total: total, out: stdout, counts: make(map[verdict]int)}
	if isTerminal(stderr) {
		r.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("replay"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return r
}

// fixtureLine is one fixture in --format json.
type fixtureLine struct {
	Type           string       `json:"type"` // "fixture"
	File           string       `json:"file"`
	Result         verdict      `json:"result"`
	Outcome        *outcomeLine `json:"outcome,omitempty"` // absent when no reply document came back
	WebhookID      string       `json:"webhookId,omitempty"`
	SubscriptionID string       `json:"subscriptionId,omitempty"` // with --fresh: the id sent
	DurationMs     *float64     `json:"durationMs,omitempty"`
	Problems       []string     `json:"problems,omitempty"`
}

// outcomeLine is the reply of one fixture in --format json: every field is
// always there, so that a script reads it without guessing what a missing
// field means.
type outcomeLine struct {
	Status            int    `json:"status"`
	Success           bool   `json:"success"`
	ErrorCode         string `json:"errorCode"`
	AccountIdentifier string `json:"accountIdentifier"`
	Message           string `json:"message"`
	Replayed          bool   `json:"replayed"` // Idempotent-Replayed: true
}

// summaryLine is the last line in --format json.
type summaryLine struct {
	Type       string   `json:"type"` // "summary"
	Sent       int      `json:"sent"`
	Passed     int      `json:"passed"`
	Failed     int      `json:"failed"`
	Mismatched int      `json:"mismatched"`
	Skipped    int      `json:"skipped"`
	Replayed   int      `json:"replayed"`
	P50Ms      *float64 `json:"p50Ms,omitempty"`
	P99Ms      *float64 `json:"p99Ms,omitempty"`
}

func (r *reporter) report(res result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[res.verdict]++
	if res.replayed {
		r.replayed++
	}
	if res.status != 0 {
		r.latencies = append(r.latencies, res.duration)
	}
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	if r.format == "json" {
		line := fixtureLine{
			Type: "fixture", File: res.file, Result: res.verdict,
			WebhookID: res.webhookID, SubscriptionID: res.subscription, Problems: res.problems,
		}
		if res.reply != nil {
			line.Outcome = &outcomeLine{
				Status:            res.status,
				Success:           res.reply.Success,
				ErrorCode:         string(res.reply.ErrorCode),
				AccountIdentifier: res.reply.AccountIdentifier,
				Message:           res.reply.Message,
				Replayed:          res.replayed,
			}
		}
		if res.duration > 0 {
			ms := millis(res.duration)
			line.DurationMs = &ms
		}
		r.writeJSON(line)
	} else {
		r.writeText(res)
	}
	if r.bar != nil {
		_ = r.bar.Add(1)
	}
}

func (r *reporter) writeText(res result) {
	var b strings.Builder
	b.WriteString(res.file)
	if r.dry {
		b.WriteString(" " + string(res.verdict))
	} else {
		status := "-"
		if res.status != 0 {
			status = fmt.Sprint(res.status)
		}
		dur := "-"
		if res.duration > 0 {
			dur = formatDuration(res.duration)
		}
		fmt.Fprintf(&b, " %s %s %s %s", status, res.outcome(), dur, res.verdict)
	}
	if len(res.problems) > 0 {
		b.WriteString(": " + strings.Join(res.problems, "; "))
	}
	b.WriteByte('\n')
	r.write(b.String())
}

func (r *reporter) writeJSON(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		r.writeErr = err
		return
	}
	r.write(string(data) + "\n")
}

func (r *reporter) write(s string) {
	if _, err := io.WriteString(r.out, s); err != nil && r.writeErr == nil {
		r.writeErr = err
	}
}

// finish prints the summary and returns the run's exit error. interrupted is
// the context's error, if the run was cut short.
func (r *reporter) finish(interrupted error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.bar != nil {
		_ = r.bar.Finish()
	}
	passed, failed, mismatched := r.counts[verdictOK], r.counts[verdictFail], r.counts[verdictMismatch]
	skipped := r.counts[verdictSkipped]
	sent := passed + failed + mismatched // tried; skipped fixtures were not
	if r.dry {
		return r.finishDry(passed, r.counts[verdictBad])
	}
	slices.Sort(r.latencies)
	p50, p99 := percentile(r.latencies, 0.50), percentile(r.latencies, 0.99)
	if r.format == "json" {
		s := summaryLine{Type: "summary", Sent: sent, Passed: passed, Failed: failed, Mismatched: mismatched, Skipped: skipped, Replayed: r.replayed}
		if len(r.latencies) > 0 {
			a, b := millis(p50), millis(p99)
			s.P50Ms, s.P99Ms = &a, &b
		}
		r.writeJSON(s)
	} else {
		r.write(fmt.Sprintf("sent %d, passed %d, failed %d, mismatched %d, skipped %d, replayed %d, p50 %s, p99 %s\n",
			sent, passed, failed, mismatched, skipped, r.replayed,
			formatDurationOrDash(p50, len(r.latencies)), formatDurationOrDash(p99, len(r.latencies))))
	}
	switch {
	case interrupted != nil:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("replay: interrupted after %d of %d fixtures: %w", sent+skipped, r.total, interrupted)}
	case r.writeErr != nil:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("replay: writing the report: %w", r.writeErr)}
	case failed > 0 || mismatched > 0 || skipped > 0:
		msg := fmt.Sprintf("replay: %d of %d fixtures did not pass (%d failed, %d mismatched)", failed+mismatched, sent, failed, mismatched)
		if skipped > 0 {
			msg += fmt.Sprintf(", %d skipped after them", skipped)
		}
		return &ExitError{Code: ExitFailed, Err: errors.New(msg)}
	}
	return nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(rank, len(sorted)-1))]
}

func millis(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000
}

// formatDuration keeps three significant places or so: 850µs, 12.35ms, 1.204s.
func formatDuration(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= 10*time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}

func formatDurationOrDash(d time.Duration, n int) string {
	if n == 0 {
		return "-"
	}
	return formatDuration(d)
}

// finishDry prints the --dry-run summary: exit 1 when a fixture is invalid.
func (r *reporter) finishDry(valid, invalid int) error {
	if r.format == "json" {
		r.writeJSON(dryRunSummary{Type: "summary", Checked: valid + invalid, Valid: valid, Invalid: invalid})
	} else {
		r.write(fmt.Sprintf("checked %d, valid %d, invalid %d\n", valid+invalid, valid, invalid))
	}
	switch {
	case r.writeErr != nil:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("replay: writing the report: %w", r.writeErr)}
	case invalid > 0:
		return &ExitError{Code: ExitFailed, Err: fmt.Errorf("replay: %d of %d fixtures are invalid", invalid, valid+invalid)}
	}
	return nil
}

// dryRunSummary is the last line of --dry-run --format json.
type dryRunSummary struct {
	Type    string `json:"type"` // "summary"
	Checked int    `json:"checked"`
	Valid   int    `json:"valid"`
	Invalid int    `json:"invalid"`
}
