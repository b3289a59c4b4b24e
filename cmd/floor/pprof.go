//go:build pprof

package main

// Built only with -tags pprof (the load benchmark's --profile): the Go
// profiles on PPROF_ADDR, on a listener of their own. Never in a
// deployed binary.

import (
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof/ on http.DefaultServeMux
	"os"
)

func init() {
	if addr := os.Getenv("PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
