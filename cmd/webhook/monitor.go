package main

import (
	"time"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/outside"
	"github.com/banking-marketplace/webhook/internal/store"
)

const (
	// checkTimeout bounds each check of an outside API, at start and after:
	// a start must not hang on an API that does not answer.
	checkTimeout = 5 * time.Second
	// recheckEvery is how often the outside APIs are checked again after
	// start, for /readyz: one token request to Q2 and one GET to QBD
	// Connect per replica and period.
	recheckEvery = 30 * time.Second
)

// outsideMonitor checks the APIs the service calls and, outside demo
// mode, Redis's eviction policy; each refusal names the settings to fix.
// In demo mode nothing is checked: the sandbox serves every API
// ("sandbox") and the embedded Redis never evicts ("embedded"). Helix is
// "unchecked": it has no call without an effect.
func outsideMonitor(cfg *config, t targets, db *store.Redis, log *zap.Logger) *outside.Monitor {
	if cfg.Demo {
		fixed := map[string]string{"q2": outside.Sandbox, "qbd_connect": outside.Sandbox, "helix": outside.Sandbox, "redis": outside.Embedded}
		return outside.NewMonitor(fixed, nil, checkTimeout, log)
	}
	fixed := map[string]string{}
	checks := []outside.Check{outside.RedisPolicy(db)}
	if t.q2 != nil {
		checks = append(checks, outside.Q2(t.q2,
			outside.Advice{Settings: "Q2_CLIENT_ID/Q2_CLIENT_SECRET", Fix: "set the OAuth2 client credentials Q2 gave you (and Q2_SCOPE if it names scopes)"},
			outside.Advice{Settings: "Q2_BASE_URL/Q2_API_VERSION", Fix: "set the base URL and API version of your Q2 API"}))
	}
	if t.qbd != nil {
		checks = append(checks, outside.QBDConnect(t.qbd,
			outside.Advice{Settings: "QBD_TOKEN", Fix: "set the bearer token QBD Connect gave you"},
			outside.Advice{Settings: "QBD_BASE_URL/QBD_API_VERSION", Fix: "set the part of the URL before /qbdconnect-api/ and its version"}))
	}
	if t.helix != nil {
		fixed["helix"] = outside.Unchecked
	}
	return outside.NewMonitor(fixed, checks, checkTimeout, log)
}
