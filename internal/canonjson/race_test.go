//go:build race

package canonjson

// raceEnabled: the race detector makes sync.Pool drop what it is given at
// random, so a pooled state is not always there to reuse.
const raceEnabled = true
