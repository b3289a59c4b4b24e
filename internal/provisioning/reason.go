package provisioning

import (
	"context"
	"strconv"
	"strings"

	"github.com/banking-marketplace/webhook/internal/events"
)

// This file names why an event was answered as it was, for the
// delivery's attempt history and log line: a reason code of ids, codes
// and statuses, never a message text (events.Decided).

// because records reason as what decided out, and returns out.
func because(ctx context.Context, reason string, out events.Outcome) events.Outcome {
	events.Decided(ctx, reason)
	return out
}

// verbs are the reason codes' words for what a step was doing.
var verbs = map[string]string{
	"provisioning":                        "provision",
	"changing":                            "change",
	"undoing":                             "undo",
	"preparing":                           "prepare",
	"looking for earlier work":            "find",
	"looking for the subscription's work": "find",
	"looking for the subscription's earlier work": "find",
	"claiming the account identifier":             "claim_identifier",
}

// stepReason is the reason code of a failed step: its target and what it
// was doing, then what answered: the latest call to the target, as the
// delivery's calls hold it ("q2.provision: HTTP 503", "helix.provision:
// helix 195122"), else the failure's code ("helix.prepare:
// CONFIGURATION_ERROR" when no call was made).
func stepReason(ctx context.Context, target, doing string, f *Failure) string {
	verb, ok := verbs[doing]
	if !ok {
		verb = strings.ReplaceAll(doing, " ", "_")
	}
	detail := string(f.Code)
	if c, ok := events.LastCall(ctx, target); ok && c.Failed() {
		detail = callDetail(c)
	}
	return target + "." + verb + ": " + detail
}

// callDetail is what a failed call answered: the outside system's own
// code when it gave one, the HTTP status, how the exchange failed.
func callDetail(c events.Call) string {
	status := "HTTP " + strconv.Itoa(c.Status)
	switch {
	case strings.HasPrefix(c.Error, c.System+" "): // the system's codes: "helix 195122"
		return c.Error
	case c.Status > 0 && c.Error != "":
		return status + " " + c.Error
	case c.Status > 0:
		return status
	case c.Error != "":
		return c.Error
	}
	return "no answer"
}
