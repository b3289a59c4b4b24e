//go:build pprof

// The Go profiles on PPROF_ADDR, on a listener of its own, in a binary
// built with -tags pprof (the load benchmark's --profile builds the
// service and the floor so). Never in a deployed binary: without the tag
// the package is empty, and the mains import it only from a file with the
// same tag.

package pprofserve

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
