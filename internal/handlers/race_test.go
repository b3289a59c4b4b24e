//go:build race

package handlers

// raceEnabled: the race detector instruments every function, and frames
// grow; TestCopyPathStack measures the build that is deployed.
const raceEnabled = true
