package sandbox

import "net/http"

// Part is another outside API the sandbox serves beside Q2. It uses only
// standard-library types, so parts never import this package.
type Part interface {
	Name() string     // its block in /_sandbox/stats ("qbd", "helix")
	Routes() []string // route names that count calls and take faults ("qbd.POST /customers", "helix.addEntitlement")
	// Register adds the part's routes to mux; wrap(route, h) counts the call and plays the route's fault.
	Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc)
	Stats() any                                   // its block of /_sandbox/stats
	Fail(w http.ResponseWriter, status, code int) // a fault's answer in the part's own error envelope (code: an API error code, 0 if none)
	Reset()
}
