package store

import "github.com/redis/go-redis/v9"

// AddHook adds a go-redis hook to r's client, for the tests outside the
// package that count or break its round trips.
func AddHook(r *Redis, h redis.Hook) { r.client.AddHook(h) }

// CompleteScriptHash is the SHA-1 of the script that records a final
// outcome, for the tests that break it.
var CompleteScriptHash = completeScript.Hash()

// ClaimScriptHash is the SHA-1 of the claim script.
var ClaimScriptHash = claimScript.Hash()
