// Package loadtest is the service's load benchmark, run by cmd/loadtest
// (make loadtest): it builds the webhook binary and the floor server
// (cmd/floor, the I/O a correct receiver cannot avoid), starts them with a
// real redis-server and the Q2 sandbox on 127.0.0.1, sends the same
// phases to each in turn, and prints throughput, latency percentiles,
// statuses, CPU per request and peak RSS, and the ratios service/floor. The ratios, not the raw numbers,
// are what to compare between machines and commits.
//
// It is Linux-only: it reads /proc for memory and CPU, and ties the programs
// it starts to its own life (Pdeathsig).
package loadtest
