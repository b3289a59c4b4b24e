package console

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// What the pages say about states and codes: each one in words, with a
// class for its colour and an icon, so that colour is never the only
// signal, and, where something is wrong, what the operator can do.

// The classes of a state, each a colour in console.css.
const (
	classOK   = "ok"   // green: where it should be
	classInfo = "info" // blue: under way, nothing wrong
	classWarn = "warn" // amber: not there yet, the service is on it
	classBad  = "bad"  // red: failed, someone must act
	classNone = "none" // grey: nothing to say
)

var icons = map[string]string{classOK: "✓", classInfo: "…", classWarn: "!", classBad: "✕", classNone: "•"}

// badge is a state in words with its colour and icon.
type badge struct {
	Class, Icon, Text string
}

func newBadge(class, text string) badge { return badge{Class: class, Icon: icons[class], Text: text} }

// callout is a page's answer to "what happened and what do I do".
type callout struct {
	Class, Icon string
	Title       string
	Text        string
	Todo        string
}

func newCallout(class, title, text, todo string) callout {
	return callout{Class: class, Icon: icons[class], Title: title, Text: text, Todo: todo}
}

// help is what an outcome code means and what to do about it.
type help struct {
	Class   string
	Meaning string
	Todo    string
}

// outcomeHelp is what each outcome code (the reply's errorCode) means
// here. A code not listed gets a generic answer.
var outcomeHelp = map[string]help{
	"SUCCESS": {classOK, "Done: the marketplace was answered with success.", ""},
	"PENDING": {classInfo, "Another copy of this event, or another event of the subscription, was being processed; the marketplace was told to send it again.",
		"Nothing: the next copy gets the answer."},
	"TRANSPORT_ERROR": {classWarn, "An outside system or the record store did not answer in time; nothing final happened, and the marketplace sends the event again.",
		"Nothing unless it keeps failing: then check the outside systems on the overview, and the calls below for the one that failed."},
	"DO_NOT_CANCEL": {classWarn, "The cancel could not be carried out yet: the marketplace keeps the subscription and sends the cancel again.",
		"Open the subscription: each step's last error says what stops it. Fix that, then press Settle now."},
	"UNAUTHORIZED": {classBad, "An outside system refused the service's own credentials. Not stored: the next copy is processed again.",
		"Fix the credentials of the system named in the reason (its client id and secret settings), then press Settle now on the subscription."},
	"FORBIDDEN": {classBad, "Refused: the event is not allowed as it stands (a cancelled subscription ordered again, an account identifier of another subscription, or an event URL that is not a configured marketplace).",
		"Read the reason: if the service's setup is wrong, fix it; the next copy is processed again. Otherwise the marketplace must send a different event."},
	"CONFIGURATION_ERROR": {classBad, "The products file does not fit this event (its product, edition or extension). Not stored: the next copy is processed again.",
		"Fix PRODUCTS_FILE as the reason says and restart; the marketplace's next copy then succeeds."},
	"ACCOUNT_NOT_FOUND": {classBad, "There is no active account for this subscription (never provisioned, refused, or cancelled).",
		"Nothing to fix in the service: open the subscription to see its intent. If the marketplace believes it is active, ask it to send the ORDER again."},
	"USER_ALREADY_EXISTS": {classBad, "The outside system already has this user: a business refusal, answered to every copy.",
		"The bank must resolve the existing user in that system; then the marketplace orders again."},
	"USER_NOT_FOUND": {classBad, "The outside system has no such user: a business refusal, answered to every copy.",
		"The bank must check the user in that system."},
	"MAX_USERS_REACHED": {classBad, "The subscription has as many users as it bought: a business refusal, answered to every copy.",
		"The customer must buy more seats, or unassign a user first."},
	"BINDING_NOT_FOUND": {classBad, "The outside system has nothing bound to this account: a business refusal, answered to every copy.",
		"The bank must check the account's setup in that system."},
	"INVALID_RESPONSE": {classBad, "An outside system answered something the service could not read.",
		"Take the request id of the failed call below to that system's support; the trace shows the exchange."},
	"OPERATION_CANCELLED": {classWarn, "The work was cut short (the service was shutting down, or the delivery ran out of time).",
		"Nothing: the next copy of the event is processed again."},
	"UNKNOWN_ERROR": {classBad, "The service failed in a way it did not expect.",
		"Open the trace of the attempt, and report it with the delivery key."},
}

func helpFor(code string) help {
	if h, ok := outcomeHelp[code]; ok {
		return h
	}
	if code == "" {
		return help{classInfo, "No outcome yet: a copy is being processed.", ""}
	}
	return help{classBad, "The delivery failed with " + code + ".", "Read the reason and the calls below; open the trace for the details."}
}

func outcomeBadge(code string) badge {
	if code == "" {
		return newBadge(classInfo, "processing")
	}
	return newBadge(helpFor(code).Class, code)
}

// failed reports whether an outcome code is a failure.
func failed(code string) bool { return code != "" && code != "SUCCESS" }

func attemptKindText(kind string) string {
	switch kind {
	case "final":
		return "final: stored and answered to every later copy"
	case "unsettled":
		return "answered, not stored: the next copy is processed again"
	case "transient":
		return "transient: the marketplace sends it again"
	case "busy":
		return "busy: another copy was being processed"
	case "conflict":
		return "conflict: the key was seen with another body"
	}
	return kind
}

func deliveryStateBadge(state string) badge {
	switch state {
	case "done":
		return newBadge(classNone, "final")
	case "released":
		return newBadge(classWarn, "not final")
	case "processing":
		return newBadge(classInfo, "processing")
	}
	return newBadge(classNone, state)
}

func deliveryStateText(state string) string {
	switch state {
	case "done":
		return "Final: every later copy of this event is answered with this outcome from the record, without calling anyone."
	case "released":
		return "Not final: the next copy of this event the marketplace sends is processed again."
	case "processing":
		return "A copy of this event is being processed right now."
	}
	return ""
}

func statusBadge(status string) badge {
	switch strings.ToLower(status) {
	case "active":
		return newBadge(classOK, "active")
	case "provisioning":
		return newBadge(classInfo, "provisioning")
	case "suspended":
		return newBadge(classWarn, "suspended")
	case "cancelled":
		return newBadge(classNone, "cancelled")
	case "failed":
		return newBadge(classBad, "failed")
	}
	return newBadge(classNone, strings.ToLower(status))
}

func intentBadge(intent string) badge {
	switch intent {
	case IntentActive:
		return newBadge(classOK, "active")
	case IntentCancelled:
		return newBadge(classNone, "cancelled")
	case IntentRefused:
		return newBadge(classBad, "refused")
	}
	return newBadge(classNone, intent)
}

func systemBadge(state string) badge {
	switch state {
	case SystemOK:
		return newBadge(classOK, "ok")
	case SystemUnreachable:
		return newBadge(classWarn, "unreachable")
	case SystemRefused:
		return newBadge(classBad, "refused")
	case "":
		return newBadge(classNone, "not called yet")
	}
	return newBadge(classNone, state)
}

func systemHelp(s System) string {
	switch s.State {
	case SystemOK:
		return "Answering."
	case SystemUnreachable:
		return "Not answering: deliveries that need it answer TRANSPORT_ERROR and the marketplace sends them again; unsettled subscriptions wait for it, and settle when it is back."
	case SystemRefused:
		return "Refusing the service's credentials or setup: fix its settings, then press Settle now on the unsettled subscriptions."
	case "":
		return "No call since the service started."
	}
	return ""
}

// systemNames are the outside systems as people say them.
var systemNames = map[string]string{"q2": "Q2", "qbd_connect": "QBD Connect", "helix": "Helix", "appdirect": "AppDirect"}

func systemName(s string) string {
	if n, ok := systemNames[s]; ok {
		return n
	}
	return s
}

// stepInfo is one step as the subscription page shows it: where it is,
// where the intent wants it, and what that means.
type stepInfo struct {
	Step
	Name    string // the system as people say it
	Wants   string // the state the intent wants
	There   bool   // the step is where the intent wants it
	Badge   badge
	Meaning string
	Todo    string
	Code    string // the last error's code
}

// mayExist is events.StepState.MayExist.
func mayExist(state string) bool {
	return state == StepLive || state == StepCalling || state == StepUnknown
}

func stepOf(intent string, st Step) stepInfo {
	name := systemName(st.System)
	in := stepInfo{Step: st, Name: name, Code: errorCode(st.LastError)}
	switch intent {
	case IntentActive:
		in.Wants, in.There = StepLive, st.State == StepLive
	default: // cancelled, refused: nothing of it live anywhere
		in.Wants, in.There = StepUndone, !mayExist(st.State)
	}
	switch st.State {
	case StepLive:
		in.Meaning = "Done in " + name + "."
		if !in.There {
			in.Meaning = "Still live in " + name + ": to be undone, after the steps that follow it (undoing goes in reverse order)."
		}
	case StepPending:
		in.Meaning = "Not done yet; no call went out that may have done it."
	case StepCalling:
		in.Meaning = "A call that creates it was cut short (a restart or a lost lock): it may exist in " + name + ". The settler finds out."
	case StepUnknown:
		in.Meaning = "The last call had no readable answer (a timeout or a 5xx): it may exist in " + name + ". The settler finds out and finishes."
	case StepUndone:
		in.Meaning = "Not in " + name + ": undone, or never made."
	default:
		in.Meaning = "State " + st.State + "."
	}
	switch {
	case in.There:
		in.Badge = newBadge(classOK, st.State)
	case st.State == StepPending && st.LastError == "":
		in.Badge = newBadge(classInfo, st.State)
	case in.Code == "" || transient(in.Code):
		in.Badge = newBadge(classWarn, st.State)
	default: // refused: it will not pass by itself
		in.Badge = newBadge(classBad, st.State)
	}
	if in.There {
		return in
	}
	switch {
	case in.Code == "UNAUTHORIZED", in.Code == "FORBIDDEN", in.Code == "CONFIGURATION_ERROR":
		in.Todo = "Fix the service's credentials or setup for " + name + " as the error says, then press Settle now."
	case in.Code == "":
		in.Todo = "The settler does it at its next attempt; Settle now does it at once."
	case transient(in.Code):
		in.Todo = "The settler retries by itself. Once " + name + " answers again, Settle now does it at once instead of waiting."
	default:
		in.Todo = name + " refused it (" + in.Code + "): that will not pass by itself. Fix it in " + name + " as the error says, then press Settle now."
	}
	return in
}

// transient reports whether a failure code passes by itself: the outside
// system or the store did not answer, or the work was cut short.
func transient(code string) bool {
	return code == "TRANSPORT_ERROR" || code == "OPERATION_CANCELLED" || code == "PENDING"
}

var codePrefix = regexp.MustCompile(`^([A-Z][A-Z0-9_]{2,}):`)

// errorCode is the code at the front of a last error ("TRANSPORT_ERROR: ..."),
// or "" when it has none.
func errorCode(lastError string) string {
	if m := codePrefix.FindStringSubmatch(lastError); m != nil {
		return m[1]
	}
	return ""
}

// emails matches an email address anywhere in a text.
var emails = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+`)

// scrub is the last guard on the free texts the console shows (a last
// error, a waiting reason): the service writes them from codes and ids,
// and should an outside system's message ever carry an email address into
// one, it is masked here.
func scrub(s string) string {
	return emails.ReplaceAllString(s, "[email removed]")
}

// ago is t relative to now, in words: "just now", "3 min ago", "in 2 h".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		s = fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 48*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		s = fmt.Sprintf("%d h", h)
		if m > 0 && h < 10 {
			s += fmt.Sprintf(" %d min", m)
		}
	default:
		s = fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

// age is how long since t, without "ago": "12 min".
func age(now, t time.Time) string {
	return strings.TrimSuffix(ago(now, t), " ago")
}

// utc is t in UTC to the second: "2026-12-05 14:03:12 UTC".
func utc(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// duration is d for people: "312 ms", "1.2 s", "3 min 4 s".
func duration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d < time.Millisecond:
		return "<1 ms"
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return d.Round(time.Second).String()
}
