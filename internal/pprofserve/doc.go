// Package pprofserve serves the Go profiles on PPROF_ADDR in a binary
// built with -tags pprof (see pprofserve.go); without the tag it is empty.
package pprofserve
