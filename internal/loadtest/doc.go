// Package loadtest is the service's load benchmark, run by cmd/loadtest
// (make loadtest): it builds the webhook binary and the floor server
// (cmd/floor, the I/O a correct receiver cannot avoid), starts them with a
// real redis-server and the Q2 sandbox on 127.0.0.1, sends the same
// phases to each in turn, and prints throughput, latency percentiles,
// statuses, outside calls and Redis commands per request, CPU per request
// and peak RSS, and the ratios service/floor. The ratios, not the raw
// numbers, are what to compare between machines and commits. Before the
// phases it sends a few ORDERs of each product one by one with Redis
// MONITOR on and counts what each one cost (outside calls, Redis round
// trips and commands): counts, unlike timings, do not depend on the
// machine, and TestCounts checks them.
//
// It is Linux-only: it reads /proc for memory and CPU, and ties the programs
// it starts to its own life (Pdeathsig).
package loadtest
