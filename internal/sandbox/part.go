package sandbox

import "net/http"

// Part is one outside API the sandbox serves (Q2, QBD Connect, Helix). It
// uses only standard-library types, so parts never import this package.
type Part interface {
	Name() string     // its block in /_sandbox/stats ("q2", "qbd", "helix")
	Routes() []string // route names that count calls and take faults ("Enrollment", "qbd.POST /customers", "helix.addEntitlement")
	// Register adds the part's routes to mux; wrap(route, h) counts the call and plays the route's fault.
	Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc)
	Stats() any                                   // its block of /_sandbox/stats
	Fail(w http.ResponseWriter, status, code int) // a fault's answer in the part's own error envelope (code: an API error code, 0 if none)
	Reset()
}

// A Part may also implement the interfaces below, for what only some APIs
// need; the sandbox looks for them as net/http looks for http.Flusher.

// TopLevelStats is a Part whose stats stand at the top level of
// /_sandbox/stats, each field of its block beside "calls", rather than in
// a block under its name: Q2's "users" and "customers", where the
// contract puts them. Its Stats must marshal to a JSON object.
type TopLevelStats interface {
	Part
	StatsAtTopLevel()
}

// RouteFaults is a Part whose routes play faults differently: Q2's token
// route answers an OAuth2 error where its other routes answer Q2's
// envelope, and no Q2 route takes an API error code.
type RouteFaults interface {
	Part
	// CheckFault says why route cannot play a fault with code (nil: it can).
	CheckFault(route string, code int) error
	// FailRoute answers a fault on route, in place of Fail.
	FailRoute(w http.ResponseWriter, route string, status, code int)
}
