package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/banking-marketplace/webhook/internal/events"
)

// isAppDirect reports whether body is a raw AppDirect event (AppDirect's
// own shape, "type" and no "event_type"), not a Q2 SubscriptionEvent.
func isAppDirect(body []byte) bool {
	var probe struct {
		Type      *string `json:"type"`
		EventType *string `json:"event_type"`
	}
	return json.Unmarshal(body, &probe) == nil && probe.Type != nil && probe.EventType == nil
}

// resultWait bounds how long an asynchronous result is waited for.
const resultWait = 60 * time.Second

// notify sends a raw AppDirect event through the sandbox's marketplace:
// registered there, then notified to the receiver's /appdirect/events by
// the sandbox, signed as AppDirect signs. A 202 (asynchronous results) is
// followed by the result the sandbox receives, which is then the reply.
func (r *runner) notify(ctx context.Context, body []byte) (response, error) {
	start := time.Now()
	var reg struct{ Token, EventURL string }
	if err := r.sandbox(ctx, http.MethodPost, "/_sandbox/events", body, &reg); err != nil {
		return response{}, fmt.Errorf("registering the event at the sandbox marketplace (--marketplace %s): %w", r.cfg.marketplace, err)
	}
	service := r.cfg.url.JoinPath("appdirect", "events").String()
	req, _ := json.Marshal(map[string]string{"url": service, "token": reg.Token})
	var got struct {
		Status int             `json:"status"`
		Body   json.RawMessage `json:"body"`
	}
	if err := r.sandbox(ctx, http.MethodPost, "/_sandbox/notify", req, &got); err != nil {
		return response{}, fmt.Errorf("notifying the receiver through the sandbox: %w", err)
	}
	resp := response{status: got.Status}
	doc := got.Body
	if got.Status == http.StatusAccepted {
		deadline := time.Now().Add(resultWait)
		for {
			var result json.RawMessage
			err := r.sandbox(ctx, http.MethodGet, "/_sandbox/results/"+reg.Token, nil, &result)
			if err == nil {
				doc, resp.status = result, http.StatusOK
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return resp, fmt.Errorf("answered 202, and no result was posted within %s", resultWait)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var reply events.Reply
	if err := json.Unmarshal(doc, &reply); err != nil {
		return resp, fmt.Errorf("the reply is not a reply document: %s", clip(doc))
	}
	resp.reply, resp.duration = &reply, time.Since(start)
	return resp, nil
}

// sandbox calls one of the sandbox marketplace's routes and decodes its
// JSON answer into out; a status other than 2xx is an error.
func (r *runner) sandbox(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.cfg.marketplace.String()+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, clip(b))
	}
	return json.Unmarshal(b, out)
}

func clip(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
