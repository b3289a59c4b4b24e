// Package sandbox serves outside APIs from memory, for tests, demos, load
// tests and the default run. Each API is a Part (internal/q2/q2sandbox,
// internal/qbdconnect/qbdsandbox, internal/helix/helixsandbox); this
// package is the frame they plug into and knows none of them:
// New(parts...) registers their routes, counts their calls, plays their
// faults in their own error envelope, puts their blocks in the stats and
// resets them. A Part uses only standard-library types, so parts never
// import this package.
//
// For tests it counts calls per route, injects faults (an error status,
// a part's error code and/or a delay for the next N calls of a route) and
// resets, both as Go methods (Stats, SetFault, Reset) and as routes under
// /_sandbox/: GET /_sandbox/stats, POST /_sandbox/faults, POST
// /_sandbox/reset.
package sandbox
