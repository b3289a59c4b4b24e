package replay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/signature"
)

// maxReplyBytes bounds what is read of a reply: replies are small documents.
const maxReplyBytes = 1 << 20

// verdict is what became of one fixture.
type verdict string

const (
	verdictOK       verdict = "OK"       // delivered; the reply matched its expectation, if any
	verdictFail     verdict = "FAIL"     // not delivered: transport error, non-JSON reply, 5xx, or a fixture that could not be sent
	verdictMismatch verdict = "MISMATCH" // delivered, but the reply differs from the expectation
	verdictSkipped  verdict = "SKIPPED"  // not sent: an earlier event of its story, or a fixture it names, did not pass
	verdictBad      verdict = "BAD"      // --dry-run: the fixture is invalid
)

// passed reports whether fixtures that depend on this one may go on.
func (v verdict) passed() bool { return v == verdictOK }

// skipError is why a fixture is not sent: one it depends on did not pass.
// It is reported as skipped, not as one more failure, so that the summary
// points at the fixture that failed.
type skipError struct{ reason string }

func (e *skipError) Error() string { return "skipped: " + e.reason }

// skipEarlierFailed is the reason for the later events of a story whose
// earlier event failed: they would fail too, for a cause already reported.
const skipEarlierFailed = "an earlier event of this story failed"

// result is one fixture's outcome, as reported. It is dropped once printed.
type result struct {
	file         string
	webhookID    string
	subscription string // with --fresh: the subscription_id sent
	status       int    // 0: no HTTP reply
	reply        *events.Reply
	replayed     bool // the reply came with Idempotent-Replayed: true
	duration     time.Duration
	verdict      verdict
	problems     []string
}

// outcome is the short reading of the reply: "success <id>" or the error
// code, marked "(replayed)" when the receiver answered from its store.
func (r *result) outcome() string {
	var s string
	switch {
	case r.reply == nil:
		return "-"
	case r.reply.Success && r.reply.AccountIdentifier != "":
		s = "success " + r.reply.AccountIdentifier
	case r.reply.Success:
		s = "success"
	case r.reply.ErrorCode != "":
		s = string(r.reply.ErrorCode)
	default:
		s = "failure"
	}
	if r.replayed {
		s += " (replayed)"
	}
	return s
}

// accountBook holds the accountIdentifier each finished fixture received,
// for placeholders, and whether it passed. Only two flags per fixture and
// the ids actually received are kept.
type accountBook struct {
	mu     sync.Mutex
	cond   *sync.Cond
	done   []bool
	passed []bool
	ids    map[int]string
}

func newAccountBook(total int) *accountBook {
	b := &accountBook{done: make([]bool, total), passed: make([]bool, total), ids: make(map[int]string)}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// finish records that fixture index is done, with the id it received ("" for
// none) and whether it passed.
func (b *accountBook) finish(index int, id string, passed bool) {
	b.mu.Lock()
	b.done[index] = true
	b.passed[index] = passed
	if id != "" {
		b.ids[index] = id
	}
	b.mu.Unlock()
	b.cond.Broadcast()
}

// wait blocks until fixture index is done (or ctx ends) and returns its id
// and whether it passed.
func (b *accountBook) wait(ctx context.Context, index int) (string, bool, error) {
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.cond.Broadcast()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for !b.done[index] {
		if err := ctx.Err(); err != nil {
			return "", false, err
		}
		b.cond.Wait()
	}
	return b.ids[index], b.passed[index], nil
}

// runner sends the fixtures of one run.
type runner struct {
	cfg      config
	plan     *runPlan
	client   *http.Client
	accounts *accountBook
	fresh    *freshIDs // nil unless --fresh
}

// send runs the fixtures against the receiver and reports them.
func send(ctx context.Context, p *runPlan, cfg config, stdout, stderr io.Writer) error {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = max(100, 2*cfg.concurrency)
	transport.MaxIdleConnsPerHost = cfg.concurrency // keep-alive for every worker
	defer transport.CloseIdleConnections()
	r := &runner{
		cfg:      cfg,
		plan:     p,
		client:   &http.Client{Transport: transport},
		accounts: newAccountBook(p.total),
	}
	if cfg.fresh {
		r.fresh = newFreshIDs()
	}
	rep := newReporter(cfg.format, p.total, stdout, stderr)

	// A job is a run of fixtures one worker sends in order: a whole story, or
	// one fixture. Once an event of a story did not pass, the later ones are
	// skipped: they depend on it, and would only repeat its failure.
	jobs := make(chan []fixture)
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for job := range jobs {
				storyFailed := false
				for _, f := range job {
					if ctx.Err() != nil {
						break
					}
					var res result
					if storyFailed {
						res = r.skip(f, skipEarlierFailed)
					} else {
						res = r.process(ctx, f)
					}
					storyFailed = storyFailed || !res.verdict.passed()
					rep.report(res)
				}
			}
		})
	}
dispatch:
	for _, g := range p.groups {
		if g.sequential {
			select {
			case jobs <- g.fixtures:
			case <-ctx.Done():
				break dispatch
			}
			continue
		}
		for i := range g.fixtures {
			select {
			case jobs <- g.fixtures[i : i+1]:
			case <-ctx.Done():
				break dispatch
			}
		}
	}
	close(jobs)
	wg.Wait()
	return rep.finish(ctx.Err())
}

// skip reports f as skipped for reason, without reading it, and records it
// as done and not passed, so that fixtures naming it are skipped too.
func (r *runner) skip(f fixture, reason string) result {
	r.accounts.finish(f.index, "", false)
	return result{file: f.path, verdict: verdictSkipped, problems: []string{reason}}
}

// process sends one fixture and judges the reply. It always records the
// fixture as done, so that fixtures waiting on it go on.
func (r *runner) process(ctx context.Context, f fixture) (res result) {
	res = result{file: f.path, verdict: verdictFail}
	defer func() {
		id := ""
		if res.reply != nil && res.reply.Success {
			id = res.reply.AccountIdentifier
		}
		r.accounts.finish(f.index, id, res.verdict.passed())
	}()
	fail := func(format string, args ...any) result {
		res.verdict = verdictFail
		res.problems = append(res.problems, fmt.Sprintf(format, args...))
		return res
	}
	// failOrSkip fails the fixture, or skips it when err says that a fixture
	// it names did not pass.
	failOrSkip := func(err error) result {
		if se, ok := errors.AsType[*skipError](err); ok {
			res.verdict = verdictSkipped
			res.problems = append(res.problems, se.reason)
			return res
		}
		return fail("%v", err)
	}

	lookup := func(name string) (string, error) {
		if name == f.name() {
			return "", fmt.Errorf("placeholder {{accounts.%s}} names the fixture itself", name)
		}
		idx, ok := r.plan.earlier(name, f.index)
		if !ok {
			return "", fmt.Errorf("unresolved placeholder {{accounts.%s}}: no fixture %s.json comes before this one in the run", name, name)
		}
		id, passed, err := r.accounts.wait(ctx, idx)
		if err != nil {
			return "", fmt.Errorf("waiting for fixture %s: %w", name, err)
		}
		if !passed {
			return "", &skipError{reason: fmt.Sprintf("fixture %s, which this one names, did not pass", name)}
		}
		if id == "" {
			return "", fmt.Errorf("unresolved placeholder {{accounts.%s}}: fixture %s received no accountIdentifier", name, name)
		}
		return id, nil
	}

	raw, err := readLimited(f.path)
	if err != nil {
		return fail("%v", unwrapPathError(err))
	}
	body, err := substitute(raw, lookup)
	if err != nil {
		return failOrSkip(err)
	}
	exp, err := readExpectation(f, lookup)
	if err != nil {
		return failOrSkip(err)
	}
	if r.fresh != nil {
		body, res.subscription = rewriteSubscription(body, r.fresh.get)
	}
	if isAppDirect(body) {
		resp, err := r.notify(ctx, body)
		return r.judge(res, exp, resp, err)
	}
	ext := r.cfg.extension
	if ext == "" {
		if ext, err = extensionOf(body); err != nil {
			return fail("%v", err)
		}
	}

	res.webhookID = newWebhookID(body, r.cfg.keepIDs)
	resp, err := r.post(ctx, ext, res.webhookID, body)
	return r.judge(res, exp, resp, err)
}

// judge reads a fixture's reply against its expectation.
func (r *runner) judge(res result, exp *expectation, resp response, err error) result {
	fail := func(format string, args ...any) result {
		res.verdict = verdictFail
		res.problems = append(res.problems, fmt.Sprintf(format, args...))
		return res
	}
	res.status, res.duration = resp.status, resp.duration
	if err != nil {
		return fail("%v", err)
	}
	status, reply := resp.status, resp.reply
	res.reply, res.replayed = reply, resp.replayed
	if status >= 500 && (exp == nil || exp.Status == nil || *exp.Status != status) {
		return fail("server error: HTTP %d", status)
	}
	if exp != nil {
		res.problems = exp.compare(status, reply)
	}
	if len(res.problems) > 0 {
		res.verdict = verdictMismatch
		if reply.Message != "" && (exp.Message == nil || *exp.Message == reply.Message) {
			// The receiver's own words usually say why.
			res.problems = append(res.problems, fmt.Sprintf("the reply says %q", reply.Message))
		}
	} else {
		res.verdict = verdictOK
	}
	return res
}

// response is what came back for one delivery.
type response struct {
	status   int // 0: no HTTP reply
	reply    *events.Reply
	replayed bool // Idempotent-Replayed: true, the receiver answered from its store
	duration time.Duration
}

// post sends body and reads the reply document. An error means the delivery
// failed at the transport level (including a reply that is not JSON); status
// and duration are set whenever a reply arrived.
func (r *runner) post(ctx context.Context, ext, id string, body []byte) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	target := r.cfg.url.JoinPath("marketplace", ext)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), bytes.NewReader(body))
	if err != nil {
		return response{}, fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if r.cfg.secret != "" {
		h, err := signature.Headers(r.cfg.secret, id, time.Now(), body)
		if err != nil {
			return response{}, fmt.Errorf("signing: %w", err)
		}
		for k, v := range h {
			req.Header[k] = v
		}
	} else {
		req.Header.Set(signature.HeaderID, id) // still the delivery key
	}
	if r.cfg.basicUser != "" {
		req.SetBasicAuth(r.cfg.basicUser, r.cfg.basicPass)
	}

	start := time.Now()
	hr, err := r.client.Do(req)
	if err != nil {
		return response{duration: time.Since(start)}, transportError(err, r.cfg.timeout)
	}
	defer hr.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hr.Body, maxReplyBytes+1))
	resp := response{status: hr.StatusCode, duration: time.Since(start)}
	if err != nil {
		return resp, fmt.Errorf("reading the reply: %w", transportError(err, r.cfg.timeout))
	}
	if len(data) > maxReplyBytes {
		return resp, fmt.Errorf("reply larger than %d MiB", maxReplyBytes>>20)
	}
	var reply events.Reply
	if err := json.Unmarshal(data, &reply); err != nil {
		return resp, fmt.Errorf("HTTP %d reply is not a JSON reply document (Content-Type %q, %d bytes)", hr.StatusCode, hr.Header.Get("Content-Type"), len(data))
	}
	resp.reply = &reply
	resp.replayed = hr.Header.Get(headerReplayed) == "true"
	return resp, nil
}

// headerReplayed marks a reply the receiver answered from its store: the
// delivery (same webhook-id, or same body without one) was answered before.
const headerReplayed = "Idempotent-Replayed"

// transportError shortens the errors of net/http to their cause.
func transportError(err error, timeout time.Duration) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no reply within --timeout %s", timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// newWebhookID is a fresh random id, or with keep the same id for the same
// body, so that sending a fixture again is the same delivery.
func newWebhookID(body []byte, keep bool) string {
	if keep {
		sum := sha256.Sum256(body)
		return "msg_" + hex.EncodeToString(sum[:16])
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "msg_" + hex.EncodeToString(b[:])
}

// extensionOf finds the extension a fixture is sent to: its extension_name,
// else the last path segment of its extension_url.
func extensionOf(body []byte) (string, error) {
	var doc struct {
		ExtensionName any `json:"extension_name"`
		ExtensionURL  any `json:"extension_url"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", errors.New("cannot tell the extension of a fixture that is not a JSON object: give --extension")
	}
	if s, ok := doc.ExtensionName.(string); ok && strings.TrimSpace(s) != "" {
		return strings.TrimSpace(s), nil
	}
	if s, ok := doc.ExtensionURL.(string); ok && s != "" {
		p := s
		if u, err := url.Parse(s); err == nil {
			p = u.Path
		}
		if seg := path.Base(strings.TrimRight(p, "/")); seg != "." && seg != "/" && seg != "" {
			return seg, nil
		}
	}
	return "", errors.New("no extension: the fixture has no extension_name and no extension_url with a path; give --extension NAME")
}

// expectation is a NAME.expect.json: the reply fields that must match. A
// field left out is not compared.
type expectation struct {
	Success           *bool   `json:"success"`
	ErrorCode         *string `json:"errorCode"`
	AccountIdentifier *string `json:"accountIdentifier"`
	Message           *string `json:"message"`
	Status            *int    `json:"status"`
}

// readExpectation reads the expectation beside f, or nil when there is none.
func readExpectation(f fixture, lookup func(string) (string, error)) (*expectation, error) {
	p := f.expectPath()
	raw, err := readLimited(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if lookup != nil {
		if raw, err = substitute(raw, lookup); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var exp expectation
	if err := dec.Decode(&exp); err != nil {
		return nil, fmt.Errorf("%s: %v (it holds some of success, errorCode, accountIdentifier, message, status)", p, err)
	}
	return &exp, nil
}

// compare lists each expected field that the reply does not match.
func (e *expectation) compare(status int, reply *events.Reply) []string {
	var problems []string
	if e.Status != nil && *e.Status != status {
		problems = append(problems, fmt.Sprintf("status: expected %d, got %d", *e.Status, status))
	}
	if e.Success != nil && *e.Success != reply.Success {
		problems = append(problems, fmt.Sprintf("success: expected %t, got %t", *e.Success, reply.Success))
	}
	str := func(field, want, got string) {
		if want != got {
			problems = append(problems, fmt.Sprintf("%s: expected %q, got %q", field, want, got))
		}
	}
	if e.ErrorCode != nil {
		str("errorCode", *e.ErrorCode, string(reply.ErrorCode))
	}
	if e.AccountIdentifier != nil {
		str("accountIdentifier", *e.AccountIdentifier, reply.AccountIdentifier)
	}
	if e.Message != nil {
		str("message", *e.Message, reply.Message)
	}
	return problems
}
