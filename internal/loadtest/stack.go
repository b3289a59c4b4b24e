package loadtest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// readyLimit bounds each program's start.
const readyLimit = 20 * time.Second

// stack is the programs of a run, all on 127.0.0.1: one redis-server and
// one Q2 sandbox, shared by the two targets, which never run at once.
type stack struct {
	redis, sandbox *process
	redisAddr      string
	sandboxURL     string
	apiToken       string   // the service's read API token
	targets        []target // the service, then the floor
	ctl            *http.Client
	all            []*process // in start order
}

// target is a receiver under test.
type target struct {
	name  string // "service" or "floor"
	url   string // base URL
	proc  *process
	pprof string // the Go profiles' base URL (--profile); "" for none
}

// startStack starts redis-server, the sandbox, the service and the floor,
// each once ready. On error, what was started is stopped.
func startStack(ctx context.Context, cfg config, module, dir string, bins binaries) (st *stack, err error) {
	st = &stack{ctl: &http.Client{Timeout: 10 * time.Second}}
	started := st // the error returns set st to nil
	defer func() {
		if err != nil {
			started.stop()
		}
	}()
	var ports [4]int // redis, sandbox, service, floor
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	rp, sp, wp, fp := ports[0], ports[1], ports[2], ports[3]
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}

	st.redisAddr = "127.0.0.1:" + strconv.Itoa(rp)
	if st.redis, err = st.start("redis", dir, env, cfg.RedisServer,
		"--bind", "127.0.0.1", "--port", strconv.Itoa(rp), "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--loglevel", "warning"); err != nil {
		return nil, err
	}
	if err := st.redis.waitReady(ctx, readyLimit, func(ctx context.Context) error {
		_, err := redisCommand(ctx, st.redisAddr, "PING")
		return err
	}); err != nil {
		return nil, err
	}

	clientID, secret := "loadtest", rand.Text()
	st.sandboxURL = "http://127.0.0.1:" + strconv.Itoa(sp)
	helixKey, helixSecret := "loadtest", rand.Text()
	if st.sandbox, err = st.start("sandbox", dir, env, bins.webhook, "sandbox",
		"--addr", "127.0.0.1:"+strconv.Itoa(sp), "--client-id", clientID, "--client-secret", secret,
		"--helix-key", helixKey, "--helix-secret", helixSecret); err != nil {
		return nil, err
	}
	if err := st.sandbox.waitReady(ctx, readyLimit, st.probe(st.sandboxURL+"/_sandbox/stats")); err != nil {
		return nil, err
	}

	redisURL := "redis://" + st.redisAddr + "/0"
	targetEnv := slices.Clip(env)
	if cfg.GoMemLimit != "" {
		targetEnv = append(targetEnv, "GOMEMLIMIT="+cfg.GoMemLimit)
	}
	if cfg.GoDebug != "" {
		targetEnv = append(targetEnv, "GODEBUG="+cfg.GoDebug)
	}
	st.apiToken = rand.Text()
	serviceEnv := append(slices.Clip(targetEnv),
		"WEBHOOK_ADDR=127.0.0.1:"+strconv.Itoa(wp),
		"REDIS_URL="+redisURL,
		"PRODUCTS_FILE="+filepath.Join(module, productsFile),
		"Q2_BASE_URL="+st.sandboxURL,
		"Q2_CLIENT_ID="+clientID,
		"Q2_CLIENT_SECRET="+secret,
		"HELIX_BASE_URL="+st.sandboxURL,
		"HELIX_API_KEY="+helixKey,
		"HELIX_API_SECRET="+helixSecret,
		"QBD_BASE_URL="+st.sandboxURL,
		"API_TOKENS="+st.apiToken, // the burst checks every subscription through the read API
		"WEBHOOK_AUTH=none",
		"MAX_IN_FLIGHT="+strconv.Itoa(cfg.MaxInFlight),
		"LOG_LEVEL=info", // as deployed: one log line per request is part of the cost
	)
	var pprof [2]string // service, floor
	if cfg.Profile != "" {
		for i := range pprof {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			pprof[i] = "127.0.0.1:" + strconv.Itoa(port)
		}
		serviceEnv = append(serviceEnv, "PPROF_ADDR="+pprof[0])
	}
	svc, err := st.start("service", dir, serviceEnv, bins.webhook, "serve")
	if err != nil {
		return nil, err
	}
	serviceURL := "http://127.0.0.1:" + strconv.Itoa(wp)
	if err := svc.waitReady(ctx, readyLimit, st.probe(serviceURL+"/readyz")); err != nil {
		return nil, err
	}

	floorEnv := slices.Clip(targetEnv)
	if cfg.Profile != "" {
		floorEnv = append(floorEnv, "PPROF_ADDR="+pprof[1])
	}
	fl, err := st.start("floor", dir, floorEnv, bins.floor,
		"--addr", "127.0.0.1:"+strconv.Itoa(fp), "--redis-url", redisURL,
		"--q2-base-url", st.sandboxURL, "--q2-client-id", clientID, "--q2-client-secret", secret,
		"--helix-key", helixKey, "--helix-secret", helixSecret,
		"--max-in-flight", strconv.Itoa(cfg.MaxInFlight))
	if err != nil {
		return nil, err
	}
	floorURL := "http://127.0.0.1:" + strconv.Itoa(fp)
	if err := fl.waitReady(ctx, readyLimit, st.probe(floorURL+"/healthz")); err != nil {
		return nil, err
	}
	st.targets = []target{{"service", serviceURL, svc, ""}, {"floor", floorURL, fl, ""}}
	if cfg.Profile != "" {
		st.targets[0].pprof, st.targets[1].pprof = "http://"+pprof[0], "http://"+pprof[1]
	}
	return st, nil
}

func (st *stack) start(name, dir string, env []string, bin string, args ...string) (*process, error) {
	p, err := startProcess(name, dir, env, bin, args...)
	if err == nil {
		st.all = append(st.all, p)
	}
	return p, err
}

// stop stops every program, the last started first.
func (st *stack) stop() {
	for i := len(st.all) - 1; i >= 0; i-- {
		st.all[i].stop(5 * time.Second)
	}
}

// probe is a readiness check: GET url answers 200.
func (st *stack) probe(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := st.ctl.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	}
}

// reset empties Redis and the sandbox, so that every target starts alike.
func (st *stack) reset(ctx context.Context) error {
	if _, err := redisCommand(ctx, st.redisAddr, "FLUSHALL"); err != nil {
		return fmt.Errorf("emptying redis: %w", err)
	}
	return st.resetSandbox(ctx)
}

// resetSandbox empties the sandbox (its users, customers and counters).
func (st *stack) resetSandbox(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.sandboxURL+"/_sandbox/reset", nil)
	if err != nil {
		return err
	}
	resp, err := st.ctl.Do(req)
	if err != nil {
		return fmt.Errorf("resetting the sandbox: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("resetting the sandbox: HTTP %d", resp.StatusCode)
	}
	return nil
}

// calls returns the sandbox's call counters per route.
func (st *stack) calls(ctx context.Context) (map[string]int, error) {
	s, err := st.stats(ctx)
	return s.Calls, err
}

// sandboxStats is what the sandbox counts: calls per route, and Q2's live
// users.
type sandboxStats struct {
	Calls map[string]int `json:"calls"`
	Users int            `json:"users"`
}

// stats reads /_sandbox/stats.
func (st *stack) stats(ctx context.Context) (sandboxStats, error) {
	var stats sandboxStats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, st.sandboxURL+"/_sandbox/stats", nil)
	if err != nil {
		return stats, err
	}
	resp, err := st.ctl.Do(req)
	if err != nil {
		return stats, fmt.Errorf("reading the sandbox's stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReply)).Decode(&stats); err != nil {
		return stats, fmt.Errorf("reading the sandbox's stats: %w", err)
	}
	if stats.Calls == nil {
		return stats, errors.New("reading the sandbox's stats: no calls object")
	}
	return stats, nil
}

// alive is an error when a program of the stack has exited.
func (st *stack) alive() error {
	for _, p := range st.all {
		if p.exited() {
			return p.exitError()
		}
	}
	return nil
}

// resetRedisStats is CONFIG RESETSTAT: INFO commandstats counts from now.
func (st *stack) resetRedisStats(ctx context.Context) error {
	if _, err := redisCommand(ctx, st.redisAddr, "CONFIG", "RESETSTAT"); err != nil {
		return fmt.Errorf("resetting redis's stats: %w", err)
	}
	return nil
}

// subscriptionActive asks the service's read API whether a subscription
// is active (GET /v1/subscriptions/{id}).
func (st *stack) subscriptionActive(ctx context.Context, client *http.Client, serviceURL, subscription string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, serviceURL+"/v1/subscriptions/"+url.PathEscape(subscription), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+st.apiToken)
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var doc struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxReply)).Decode(&doc); err != nil && resp.StatusCode == http.StatusOK {
		return false, fmt.Errorf("GET /v1/subscriptions/%s: %w", subscription, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK && doc.Status == "active", nil
}
