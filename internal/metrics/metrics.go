// Package metrics is the service's Prometheus instrumentation: the
// families the contract names (deliveries, their duration, duplicates,
// outside API calls and their duration, deliveries in flight), Redis
// errors, OAuth2 token fetches, plan steps undone, and the Go and process
// collectors, on one registry served at /metrics.
//
// Every label is bounded: event types outside the three the service
// handles count as "other", outcomes are error codes, outside API actions
// are route patterns, never ids.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/httpcall"
)

// Metrics holds the service's metric families. Its methods are safe for
// concurrent use; a nil *Metrics records nothing.
type Metrics struct {
	reg          *prometheus.Registry
	deliveries   *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	duplicates   prometheus.Counter
	upstream     *prometheus.CounterVec
	upstreamTime *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	redisErrors  prometheus.Counter
	tokenFetches *prometheus.CounterVec
	stepsUndone  *prometheus.CounterVec

	settleAttempts *prometheus.CounterVec
	misconfigured  *prometheus.CounterVec
	abandoned      prometheus.Counter
	unsettled      prometheus.Gauge
	unsettledAge   prometheus.Gauge
	pendingResults prometheus.Gauge
}

// New returns the metrics on a registry of their own (with the Go and
// process collectors).
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{reg: reg}
	m.deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_deliveries_total",
		Help: "Deliveries answered on the extension URL, by event type and outcome (SUCCESS, REPLAYED or the error code).",
	}, []string{"event_type", "outcome"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "webhook_delivery_duration_seconds",
		Help:    "Time from a delivery's arrival to its reply, by event type.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 4, 5, 10},
	}, []string{"event_type"})
	m.duplicates = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "webhook_duplicates_total",
		Help: "Copies of deliveries answered from their stored outcome, without processing.",
	})
	m.upstream = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_upstream_requests_total",
		Help: "Attempts at outside API calls (retries included), by target (q2, qbd_connect, helix), action and HTTP status (0: no response).",
	}, []string{"target", "action", "status"})
	m.upstreamTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "webhook_upstream_request_duration_seconds",
		Help:    "Duration of outside API attempts, by target and action.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"target", "action"})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "webhook_in_flight",
		Help: "Authenticated deliveries being processed now (at most MAX_IN_FLIGHT).",
	})
	m.redisErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "webhook_redis_errors_total",
		Help: "Redis commands that failed (connection, timeout, server error; not a missing key).",
	})
	m.tokenFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_token_refreshes_total",
		Help: "OAuth2 access tokens fetched from an outside API, by target and result (ok, error).",
	}, []string{"target", "result"})
	m.stepsUndone = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_plan_steps_undone_total",
		Help: "Plan steps undone (a CANCEL, an ORDER refused or abandoned), by target.",
	}, []string{"target"})
	m.settleAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_settle_attempts_total",
		Help: "Calls that move a plan step toward its subscription's intent, by target and result (done, transient, refused, misconfigured).",
	}, []string{"target", "result"})
	m.misconfigured = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "webhook_misconfigured_total",
		Help: "Outside calls refused because of the service's own setup (credentials, approval, configured ids), by target. Each one pages.",
	}, []string{"target"})
	m.abandoned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "webhook_abandoned_orders_total",
		Help: "ORDERs (and CHANGEs) answered only with 503 whose copies stopped coming for ABANDON_AFTER, given up and undone.",
	})
	m.unsettled = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "webhook_unsettled_subscriptions",
		Help: "Subscriptions whose outside systems are not where their intent wants them yet (the settle queue).",
	})
	m.pendingResults = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "webhook_appdirect_results_pending",
		Help: "AppDirect results answered 202 and not yet accepted by the marketplace (the results queue).",
	})
	m.unsettledAge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "webhook_unsettled_oldest_seconds",
		Help: "Age of the oldest unsettled subscription, 0 when none.",
	})
	// Series that exist from the start, at 0, so that dashboards and alerts
	// see them before the first event.
	for _, t := range []string{"q2", "qbd_connect", "helix"} {
		m.stepsUndone.WithLabelValues(t)
		m.misconfigured.WithLabelValues(t)
		for _, r := range []string{"done", "transient", "refused", "misconfigured"} {
			m.settleAttempts.WithLabelValues(t, r)
		}
	}
	m.tokenFetches.WithLabelValues("q2", "ok")
	m.tokenFetches.WithLabelValues("q2", "error")
	for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.duplicates, m.upstream, m.upstreamTime,
		m.inFlight, m.redisErrors, m.tokenFetches, m.stepsUndone,
		m.settleAttempts, m.misconfigured, m.abandoned, m.unsettled, m.unsettledAge, m.pendingResults,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Delivered records one delivery's reply.
func (m *Metrics) Delivered(eventType, outcome string, replayed bool, d time.Duration) {
	if m == nil {
		return
	}
	t := eventTypeLabel(eventType)
	if outcome == "" {
		outcome = "NONE"
	}
	m.deliveries.WithLabelValues(t, outcome).Inc()
	m.duration.WithLabelValues(t).Observe(d.Seconds())
	if replayed {
		m.duplicates.Inc()
	}
}

// InFlight moves the gauge of deliveries being processed.
func (m *Metrics) InFlight(delta int) {
	if m != nil {
		m.inFlight.Add(float64(delta))
	}
}

// OutsideCall records one attempt at an outside API, as every client's
// observer reports it: its system is the target label, its action (a
// route's pattern, never an id) the action label; a token fetch also
// counts in the token family.
func (m *Metrics) OutsideCall(a httpcall.Attempt) {
	if m == nil {
		return
	}
	m.upstream.WithLabelValues(a.System, a.Action, strconv.Itoa(a.Status)).Inc()
	m.upstreamTime.WithLabelValues(a.System, a.Action).Observe(a.Duration.Seconds())
	if a.Action == httpcall.TokenAction {
		result := "ok"
		if a.Err != nil {
			result = "error"
		}
		m.tokenFetches.WithLabelValues(a.System, result).Inc()
	}
}

// RedisError records a failed Redis command.
func (m *Metrics) RedisError(string) {
	if m != nil {
		m.redisErrors.Inc()
	}
}

// StepUndone records a plan step undone.
func (m *Metrics) StepUndone(target string) {
	if m != nil {
		m.stepsUndone.WithLabelValues(target).Inc()
	}
}

// SettleAttempt records one call that moves a plan step.
func (m *Metrics) SettleAttempt(target, result string) {
	if m != nil {
		m.settleAttempts.WithLabelValues(target, result).Inc()
	}
}

// Misconfigured records an outside call refused because of the service's
// own setup.
func (m *Metrics) Misconfigured(target string) {
	if m != nil {
		m.misconfigured.WithLabelValues(target).Inc()
	}
}

// Abandoned records an intent given up after ABANDON_AFTER.
func (m *Metrics) Abandoned(string) {
	if m != nil {
		m.abandoned.Inc()
	}
}

// Unsettled sets the unsettled gauges: how many, and the oldest one's age.
func (m *Metrics) Unsettled(n int64, oldest time.Duration) {
	if m != nil {
		m.unsettled.Set(float64(n))
		m.unsettledAge.Set(oldest.Seconds())
	}
}

// PendingResults sets the gauge of AppDirect results not posted yet.
func (m *Metrics) PendingResults(n int64) {
	if m != nil {
		m.pendingResults.Set(float64(n))
	}
}

// eventTypeLabel keeps the event_type label bounded: anything a sender
// makes up counts as "other".
func eventTypeLabel(t string) string {
	switch events.EventType(t) {
	case events.SubscriptionOrder, events.SubscriptionChange, events.SubscriptionCancel:
		return t
	case "":
		return "none"
	}
	return "other"
}
