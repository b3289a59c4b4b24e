package console

import (
	"cmp"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/events"
)

// readFailed answers a Reader error: not found, or the store unavailable.
func (c *Console) readFailed(w http.ResponseWriter, r *http.Request, s *session, what string, err error) {
	if errors.Is(err, events.ErrNotFound) {
		c.renderError(w, r, s, http.StatusNotFound, "No "+what,
			"The records have no "+what+". Records expire after EVENT_TTL; search by another id the customer or the marketplace gave you.")
		return
	}
	c.log.Warn("console: the record store did not answer", zap.String("path", r.URL.Path), zap.Error(err))
	w.Header().Set("Retry-After", "5")
	c.renderError(w, r, s, http.StatusServiceUnavailable, "The record store did not answer",
		"Nothing is wrong with what you asked; try again in a moment. If it lasts, the service's readiness (/readyz) says whether Redis is reachable.")
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderError(w, r, s, http.StatusNotFound, "No such page", "Start from the overview, or search by an id.")
}

// outcomeRow is one outcome's counts on the overview.
type outcomeRow struct {
	Outcome   string
	Hour, Day int
	Share     int // per mille of the day's deliveries
}

type overviewData struct {
	Overview
	Outcomes         []outcomeRow
	HourTotal        int
	DayTotal         int
	HourFailed       int
	DayFailed        int
	Callout          callout
	MoreFailures     bool
	FailuresShownMax int
}

// maxRecentFailures is how many recent failures the overview lists.
const maxRecentFailures = 10

func (c *Console) overview(w http.ResponseWriter, r *http.Request, s *session) {
	ov, err := c.cfg.Reader.Overview(r.Context())
	if err != nil {
		c.readFailed(w, r, s, "overview", err)
		return
	}
	d := overviewData{Overview: ov, FailuresShownMax: maxRecentFailures}
	rows := map[string]*outcomeRow{}
	row := func(code string) *outcomeRow {
		if rows[code] == nil {
			rows[code] = &outcomeRow{Outcome: code}
		}
		return rows[code]
	}
	for _, oc := range ov.Hour {
		row(oc.Outcome).Hour += oc.Count
		d.HourTotal += oc.Count
		if failed(oc.Outcome) {
			d.HourFailed += oc.Count
		}
	}
	for _, oc := range ov.Day {
		row(oc.Outcome).Day += oc.Count
		d.DayTotal += oc.Count
		if failed(oc.Outcome) {
			d.DayFailed += oc.Count
		}
	}
	for _, r := range rows {
		if d.DayTotal > 0 {
			r.Share = r.Day * 1000 / d.DayTotal
		}
		d.Outcomes = append(d.Outcomes, *r)
	}
	slices.SortFunc(d.Outcomes, func(a, b outcomeRow) int {
		if (a.Outcome == "SUCCESS") != (b.Outcome == "SUCCESS") {
			if a.Outcome == "SUCCESS" {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(b.Day, a.Day), cmp.Compare(b.Hour, a.Hour), strings.Compare(a.Outcome, b.Outcome))
	})
	if len(d.RecentFailures) > maxRecentFailures {
		d.RecentFailures, d.MoreFailures = d.RecentFailures[:maxRecentFailures], true
	}
	d.Callout = overviewCallout(c.cfg.Now(), ov, d.HourFailed)
	c.render(w, r, s, http.StatusOK, "overview", "Overview", d)
}

// overviewCallout is the overview's one-line answer: is anything wrong now,
// and what to look at first.
func overviewCallout(now time.Time, ov Overview, hourFailed int) callout {
	var down []string
	refused := false
	for _, sys := range ov.Systems {
		if sys.State == SystemUnreachable || sys.State == SystemRefused {
			down = append(down, systemName(sys.Name)+" "+sys.State)
			refused = refused || sys.State == SystemRefused
		}
	}
	switch {
	case refused:
		return newCallout(classBad, "An outside system refuses the service", strings.Join(down, ", ")+".",
			"Fix that system's credentials or setup (see below), then press Settle now on the unsettled subscriptions.")
	case len(down) > 0:
		return newCallout(classWarn, "An outside system is not answering", strings.Join(down, ", ")+".",
			"Nothing to do in the service: deliveries are retried by the marketplace and unsettled subscriptions settle when it is back. Tell that system's owner if it lasts.")
	case ov.Unsettled > 0:
		what := strconv.Itoa(ov.Unsettled) + " subscriptions are"
		if ov.Unsettled == 1 {
			what = "1 subscription is"
		}
		return newCallout(classWarn, what+" not settled yet",
			"The oldest has waited "+age(now, ov.Oldest.Settle.Since)+".",
			"Open the oldest: its steps say what stops it.")
	case hourFailed > 0:
		return newCallout(classInfo, "All systems answer; some deliveries failed this hour",
			"See the recent failures below: most are refusals the marketplace was told about.", "")
	}
	return newCallout(classOK, "All clear", "Every outside system answers and every subscription is settled.", "")
}

type subscriptionData struct {
	Subscription
	Steps     []stepInfo
	Callout   callout
	Unsettled bool
	CanSettle bool
	Attempts  int // across its deliveries
}

func (c *Console) subscription(w http.ResponseWriter, r *http.Request, s *session) {
	sub, err := c.cfg.Reader.Subscription(r.Context(), r.PathValue("id"))
	if err != nil {
		c.readFailed(w, r, s, "subscription "+strconv.Quote(r.PathValue("id")), err)
		return
	}
	d := subscriptionData{Subscription: sub, Unsettled: !sub.Settle.Since.IsZero()}
	d.CanSettle = d.Unsettled && c.cfg.Actions != nil
	for _, st := range sub.Steps {
		d.Steps = append(d.Steps, stepOf(sub.Intent, st))
	}
	for _, dl := range sub.Deliveries {
		d.Attempts += len(dl.Attempts) + dl.Dropped
	}
	d.Callout = subscriptionCallout(c.cfg.Now(), sub, d.Steps)
	c.render(w, r, s, http.StatusOK, "subscription", "Subscription "+sub.ID, d)
}

// subscriptionCallout answers "where does it stand, and what do I do".
func subscriptionCallout(now time.Time, sub Subscription, steps []stepInfo) callout {
	stuck := blocking(sub.Intent, steps)
	if sub.Settle.Since.IsZero() {
		switch sub.Intent {
		case IntentRefused:
			return newCallout(classNone, "Refused ("+sub.RefusalCode+"), and nothing of it is left",
				"The marketplace was told the order failed; no step remains in any outside system.", "")
		case IntentCancelled:
			return newCallout(classNone, "Cancelled, and nothing of it is left",
				"Every step is undone in its outside system.", "")
		}
		if !sub.Promised {
			return newCallout(classInfo, "Provisioned, not answered with success yet",
				"Every step is live; the marketplace's next copy of the event gets the success.", "")
		}
		return newCallout(classOK, "Settled: "+sub.Intent+" everywhere", "Every step is where the intent wants it.", "")
	}
	text := "Not settled for " + age(now, sub.Settle.Since)
	if sub.Settle.Waiting != "" {
		text += ": " + scrub(sub.Settle.Waiting)
	}
	text += "."
	if !sub.Settle.Next.IsZero() {
		text += " The settler tries again " + ago(now, sub.Settle.Next) + " (" + utc(sub.Settle.Next) + ")."
	}
	todo := "Settle now tries at once."
	if stuck != nil && stuck.Todo != "" {
		todo = stuck.Name + ": " + stuck.Todo
	}
	title := "Not settled: the intent is " + sub.Intent
	if stuck != nil {
		title += ", " + stuck.Name + " is " + stuck.State
	}
	class := classWarn
	if stuck != nil && stuck.Badge.Class == classBad {
		class = classBad
	}
	return newCallout(class, title, text, todo)
}

// blocking is the step that holds a subscription back: the first one not
// where the intent wants it that has an error, else the next the settler
// works on (in plan order toward active, in reverse toward undone); nil
// when every step is there.
func blocking(intent string, steps []stepInfo) *stepInfo {
	var next *stepInfo
	for i := range steps {
		st := &steps[i]
		if st.There {
			continue
		}
		if st.LastError != "" {
			return st
		}
		if next == nil || intent != IntentActive {
			next = st
		}
	}
	return next
}

// settleNow is POST /console/subscriptions/{id}/settle, for an unsettled
// subscription only; its result is shown on the subscription's page. It
// reads nothing itself: SettleNow reads the subscription once, answers
// ErrSettled without touching a settled one, and says where the settle
// pass left it.
func (c *Console) settleNow(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	back := Prefix + "subscriptions/" + url.PathEscape(id)
	log := c.log.With(zap.String("operator", s.Operator), zap.String("subscription", id), zap.String("action", "settle_now"))
	if c.cfg.Actions == nil {
		c.renderError(w, r, s, http.StatusNotFound, "Settle now is off", "This console was started without actions.")
		return
	}
	res, err := c.cfg.Actions.SettleNow(r.Context(), id)
	switch {
	case errors.Is(err, events.ErrNotFound):
		log.Info("console: settle now: no such subscription")
		c.readFailed(w, r, s, "subscription "+strconv.Quote(id), err)
		return
	case errors.Is(err, ErrSettled):
		log.Info("console: settle now: the subscription is settled already")
		c.flash(r, s, classInfo, "Nothing done: subscription "+id+" is settled already.")
	case errors.Is(err, events.ErrBusy):
		log.Info("console: settle now: the subscription is busy")
		c.flash(r, s, classWarn, "Not now: subscription "+id+" is being worked on (an event or the settler holds it). Try again in a moment.")
	case err != nil:
		log.Warn("console: settle now failed", zap.Error(err))
		c.flash(r, s, classBad, "Settle now failed: the record store or the lock did not answer. Try again in a moment.")
	case res.Settled:
		log.Info("console: settle now: settled")
		c.flash(r, s, classOK, "Settled: every step of "+id+" is where the intent wants it.")
	default:
		log.Info("console: settle now: still not settled", zap.String("waiting", res.Waiting))
		text := "Tried, still not settled"
		if res.Waiting != "" {
			text += ": " + scrub(res.Waiting)
		}
		if !res.Next.IsZero() {
			text += ". The settler tries again at " + utc(res.Next)
		}
		c.flash(r, s, classWarn, text+".")
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// flash keeps a message for the session's next page.
func (c *Console) flash(r *http.Request, s *session, class, text string) {
	s.Flash = &Flash{Class: class, Text: text}
	c.save(r, s)
}

type deliveryData struct {
	Delivery
	Help    help
	Callout callout
	Calls   int
}

func (c *Console) delivery(w http.ResponseWriter, r *http.Request, s *session) {
	key := r.PathValue("key")
	d, err := c.cfg.Reader.Delivery(r.Context(), key)
	if err != nil {
		c.readFailed(w, r, s, "delivery "+strconv.Quote(key), err)
		return
	}
	data := deliveryData{Delivery: d, Help: helpFor(d.Outcome)}
	for _, a := range d.Attempts {
		data.Calls += len(a.Calls)
	}
	title := d.EventType + ": " + cmp.Or(d.Outcome, "processing")
	if n := len(d.Attempts) + d.Dropped; n > 1 {
		title += " after " + strconv.Itoa(n) + " attempts"
	}
	data.Callout = newCallout(data.Help.Class, title, data.Help.Meaning+" "+deliveryStateText(d.State), data.Help.Todo)
	c.render(w, r, s, http.StatusOK, "delivery", "Delivery "+d.Key, data)
}

// maxQuery bounds a search's text.
const maxQuery = 200

type searchData struct {
	Q       string
	Hits    []Hit
	Refused string // why the search was not run
}

func (d searchData) query() string { return d.Q }

func (c *Console) search(w http.ResponseWriter, r *http.Request, s *session) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	d := searchData{Q: q}
	switch {
	case q == "":
	case strings.Contains(q, "@") && !strings.HasPrefix(q, "appdirect:") && !strings.HasPrefix(q, "id:"):
		// Ids only: an email address is personal data, and is not searched
		// for, logged or shown back ("mailto:" and other prefixes
		// included). A delivery key may hold an "@" (an AppDirect one:
		// "appdirect:<token>@<marketplace>", or a webhook-id's), always
		// after its kind.
		d.Q, d.Refused = "", "The console searches by ids only, never by email address or name."
	case len(q) > maxQuery:
		d.Q, d.Refused = "", "That is longer than any id ("+strconv.Itoa(maxQuery)+" characters at most)."
	default:
		hits, err := c.cfg.Reader.Search(r.Context(), q)
		if err != nil {
			c.readFailed(w, r, s, "search", err)
			return
		}
		if len(hits) == 1 && r.URL.Query().Get("all") == "" {
			http.Redirect(w, r, hitURL(hits[0]), http.StatusSeeOther)
			return
		}
		d.Hits = hits
	}
	status := http.StatusOK
	if d.Refused != "" {
		status = http.StatusBadRequest // and no refresh links, which would repeat the query
	}
	c.render(w, r, s, status, "search", "Search", d)
}

func hitURL(h Hit) string {
	if h.Kind == HitDelivery {
		return Prefix + "deliveries/" + url.PathEscape(h.ID)
	}
	return Prefix + "subscriptions/" + url.PathEscape(h.ID)
}

// The failures page's windows, the first the default.
var failureWindows = []struct {
	Param string
	Label string
	D     time.Duration
}{
	{"24h", "last 24 hours", 24 * time.Hour},
	{"1h", "last hour", time.Hour},
	{"7d", "last 7 days", 7 * 24 * time.Hour},
}

type window struct {
	Param, Label, URL string
	On                bool
}

type failuresData struct {
	Rows    []DeliveryRow
	Since   time.Time
	Windows []window
	Label   string
	Next    string // the next page's URL; "" on the last
	Paged   bool   // this is not the first page
	First   string // the first page's URL
}

func (c *Console) failures(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	param := q.Get("since")
	win := failureWindows[0]
	for _, fw := range failureWindows {
		if fw.Param == param {
			win = fw
		}
	}
	d := failuresData{Since: c.cfg.Now().Add(-win.D), Label: win.Label}
	for _, fw := range failureWindows {
		d.Windows = append(d.Windows, window{Param: fw.Param, Label: fw.Label, On: fw.Param == win.Param,
			URL: Prefix + "failures?since=" + fw.Param})
	}
	cursor := q.Get("cursor")
	rows, next, err := c.cfg.Reader.Failures(r.Context(), d.Since, cursor)
	if err != nil {
		c.readFailed(w, r, s, "failures", err)
		return
	}
	d.Rows, d.Paged, d.First = rows, cursor != "", Prefix+"failures?since="+win.Param
	if next != "" {
		d.Next = Prefix + "failures?" + url.Values{"since": {win.Param}, "cursor": {next}}.Encode()
	}
	c.render(w, r, s, http.StatusOK, "failures", "Failures", d)
}

type unsettledData struct {
	Rows      []SubscriptionRow
	CanSettle bool
}

func (c *Console) unsettled(w http.ResponseWriter, r *http.Request, s *session) {
	rows, err := c.cfg.Reader.Unsettled(r.Context())
	if err != nil {
		c.readFailed(w, r, s, "unsettled subscriptions", err)
		return
	}
	c.render(w, r, s, http.StatusOK, "unsettled", "Unsettled", unsettledData{Rows: rows, CanSettle: c.cfg.Actions != nil})
}
