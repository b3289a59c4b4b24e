//go:build pprof

package main

// Built only with -tags pprof (the load benchmark's --profile): the Go
// profiles on PPROF_ADDR. Never in a deployed binary.
import _ "github.com/banking-marketplace/webhook/internal/pprofserve"
