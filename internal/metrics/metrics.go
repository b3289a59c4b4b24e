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
		Help: "Plan steps undone after a later step of an ORDER failed for good, by target.",
	}, []string{"target"})
	// Series that exist from the start, at 0, so that dashboards and alerts
	// see them before the first event.
	for _, t := range []string{"q2", "qbd_connect", "helix"} {
		m.stepsUndone.WithLabelValues(t)
	}
	m.tokenFetches.WithLabelValues("q2", "ok")
	m.tokenFetches.WithLabelValues("q2", "error")
	for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.duplicates, m.upstream, m.upstreamTime,
		m.inFlight, m.redisErrors, m.tokenFetches, m.stepsUndone,
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
