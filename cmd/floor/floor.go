package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
)

const (
	// maxBody is the service's body cap (handlers.MaxBody).
	maxBody = 1 << 20
	// processTimeout bounds one delivery's handling, as PROCESS_TIMEOUT does
	// in the service.
	processTimeout = 4 * time.Second
	// claimTTL outlives processTimeout, like the service's lease: a floor
	// killed mid-delivery leaves a claim that expires by itself.
	claimTTL = processTimeout + time.Second
	// defaultWaitForOther bounds how long a copy waits for a claim held
	// elsewhere (another replica) before it is told PENDING, as the service
	// does.
	defaultWaitForOther = 2 * time.Second
	// maxQ2Reply bounds what is read of a Q2 reply.
	maxQ2Reply = 1 << 20
)

// config is what the floor needs; run fills it from flags.
type config struct {
	Q2BaseURL    string // the sandbox (or Q2) base URL, without the version
	ClientID     string
	ClientSecret string
	// Helix and QBD Connect, for the products that provision there (see
	// planOf); "" base URLs take Q2BaseURL (the sandbox serves all three).
	HelixBaseURL, HelixKey, HelixSecret string
	QBDBaseURL, QBDProductID            string
	EventTTL                            time.Duration // how long a stored reply is kept
	MaxInFlight                         int           // deliveries at once; past it, 503
	WaitForOther                        time.Duration // 0: defaultWaitForOther
}

// floor is the minimal receiver. Its Redis keys are its own ("floor:"):
// it never shares data with the service, though both may use one Redis.
type floor struct {
	cfg   config
	rdb   *redis.Client
	q2    *http.Client
	slots chan struct{}

	tokMu sync.Mutex
	tok   string // the cached Q2 access token; "" until fetched

	mu      sync.Mutex
	flights map[string]*flight // delivery hash → its processing on this process
}

// flight is one delivery being processed; copies that reach this process
// meanwhile wait on done instead of touching Redis.
type flight struct {
	done chan struct{}
	ans  answer
}

// answer is a status and the reply bytes; stored marks a reply written to
// Redis (every copy gets it again), replayed one that an earlier
// processing stored.
type answer struct {
	status   int
	body     []byte
	stored   bool
	replayed bool
}

func newFloor(cfg config, rdb *redis.Client, q2 *http.Client) (*floor, error) {
	if u, err := url.Parse(cfg.Q2BaseURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--q2-base-url %q: want an absolute http(s) URL such as http://127.0.0.1:9090", cfg.Q2BaseURL)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("--q2-client-id and --q2-client-secret are both required")
	}
	cfg.HelixBaseURL, cfg.QBDBaseURL = cmp.Or(cfg.HelixBaseURL, cfg.Q2BaseURL), cmp.Or(cfg.QBDBaseURL, cfg.Q2BaseURL)
	for _, b := range []struct{ flag, url string }{{"--helix-base-url", cfg.HelixBaseURL}, {"--qbd-base-url", cfg.QBDBaseURL}} {
		if u, err := url.Parse(b.url); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("%s %q: want an absolute http(s) URL such as http://127.0.0.1:9090", b.flag, b.url)
		}
	}
	if cfg.QBDProductID == "" {
		return nil, errors.New("--qbd-product-id is required, like prod_qbd (the QBD Connect product of the qbd-connect extension)")
	}
	if cfg.MaxInFlight < 1 {
		return nil, fmt.Errorf("--max-in-flight %d: want at least 1, like 256", cfg.MaxInFlight)
	}
	if cfg.EventTTL <= 0 {
		return nil, fmt.Errorf("--event-ttl %s: want a positive duration, like 72h", cfg.EventTTL)
	}
	if cfg.WaitForOther <= 0 {
		cfg.WaitForOther = defaultWaitForOther
	}
	for _, u := range []*string{&cfg.Q2BaseURL, &cfg.HelixBaseURL, &cfg.QBDBaseURL} {
		*u = strings.TrimRight(*u, "/")
	}
	return &floor{cfg: cfg, rdb: rdb, q2: q2, slots: make(chan struct{}, cfg.MaxInFlight), flights: map[string]*flight{}}, nil
}

// handler serves the extension URL and /healthz. Its one middleware is
// recovery, which any server in production needs: no request log, no
// request id; each is work the service chose.
func (f *floor) handler() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(recovering)
	e.POST("/marketplace/:extension", f.receive)
	e.GET("/healthz", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	return e
}

// reply is one of the two reply documents of the contract.
type reply struct {
	Success           bool   `json:"success"`
	AccountIdentifier string `json:"accountIdentifier,omitempty"`
	ErrorCode         string `json:"errorCode,omitempty"`
	Message           string `json:"message,omitempty"`
}

func document(r reply) []byte {
	b, _ := json.Marshal(r) // a struct of strings and a bool always marshals
	return b
}

func failure(status int, code, msg string) answer {
	return answer{status: status, body: document(reply{ErrorCode: code, Message: msg})}
}

func pending() answer {
	return failure(http.StatusConflict, "PENDING", "a copy of this delivery is being processed; send again shortly")
}

// receive is POST /marketplace/:extension: a stored reply for a copy, else
// the delivery processed once.
func (f *floor) receive(c echo.Context) error {
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return blob(c, failure(http.StatusRequestEntityTooLarge, "INVALID_RESPONSE", "the body is larger than 1 MiB"))
		}
		return blob(c, failure(http.StatusBadRequest, "INVALID_RESPONSE", "the body could not be read"))
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])

	ctx, cancel := context.WithTimeout(c.Request().Context(), processTimeout)
	defer cancel()
	stored, err := f.rdb.Get(ctx, replyKey(hash)).Bytes()
	switch {
	case err == nil:
		c.Response().Header().Set("Idempotent-Replayed", "true")
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, stored)
	case !errors.Is(err, redis.Nil):
		return blob(c, unavailable("redis: "+err.Error()))
	}
	// Like the service, the cap protects processing, not stored replies:
	// a copy answered above never needs a slot.
	select {
	case f.slots <- struct{}{}:
		defer func() { <-f.slots }()
	default:
		c.Response().Header().Set("Retry-After", "1")
		return blob(c, failure(http.StatusServiceUnavailable, "TRANSPORT_ERROR", "at capacity; send again shortly"))
	}
	a := f.once(ctx, c.Param("extension"), hash, body)
	if a.replayed {
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	return blob(c, a)
}

// recovering answers a handler's panic 500 UNKNOWN_ERROR with the
// contract's failure document, as the service does, instead of net/http's
// dropped connection, and says so on stderr. A deferred recover costs no
// allocation until a panic. http.ErrAbortHandler goes on to net/http,
// which wants to see it.
func recovering(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			if r == http.ErrAbortHandler {
				panic(r)
			}
			fmt.Fprintf(os.Stderr, "floor: %s %s panicked: %v\n%s", c.Request().Method, c.Path(), r, debug.Stack())
			if c.Response().Committed {
				err = nil // the reply is out: nothing more can be said
				return
			}
			err = blob(c, panicked())
		}()
		return next(c)
	}
}

// panicked is the answer to a delivery whose processing panicked (nothing
// is stored, so a copy is processed again), built once: every new
// delivery's flight holds it until the work answers.
var panicked = sync.OnceValue(func() answer {
	return failure(http.StatusInternalServerError, "UNKNOWN_ERROR", "internal error; it has been logged")
})

func blob(c echo.Context, a answer) error {
	return c.Blob(a.status, echo.MIMEApplicationJSON, a.body)
}

func unavailable(cause string) answer {
	return failure(http.StatusServiceUnavailable, "TRANSPORT_ERROR", "a dependency is unavailable ("+cause+"); send again shortly")
}

func replyKey(hash string) string { return "floor:reply:" + hash }
func claimKey(hash string) string { return "floor:claim:" + hash }

// once processes the delivery unless this process is already at it; then it
// waits for that outcome until ctx ends.
func (f *floor) once(ctx context.Context, extension, hash string, body []byte) answer {
	f.mu.Lock()
	if fl, ok := f.flights[hash]; ok {
		f.mu.Unlock()
		select {
		case <-fl.done:
			a := fl.ans
			a.replayed = a.stored // a 503 or a panic's 500 is not a stored outcome
			return a
		case <-ctx.Done():
			return pending()
		}
	}
	// What the copies waiting for it get if the processing panics (the
	// panic goes on to recovering): the flight ends either way, so that
	// later copies are not left waiting on it.
	fl := &flight{done: make(chan struct{}), ans: panicked()}
	f.flights[hash] = fl
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.flights, hash)
		f.mu.Unlock()
		close(fl.done)
	}()

	// The work outlives a caller that hangs up: copies are waiting for it.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), processTimeout)
	defer cancel()
	fl.ans = f.process(pctx, extension, hash, body)
	return fl.ans
}

// order is what the floor reads of a SubscriptionEvent: the subscription,
// who to enroll, and what the Helix and QBD Connect steps need.
type order struct {
	SubscriptionID string `json:"subscription_id"`
	Event          struct {
		Creator *struct {
			FirstName string `json:"firstName"`
			LastName  string `json:"lastName"`
			Email     string `json:"email"`
			Address   *struct {
				Street1 string `json:"street1"`
				City    string `json:"city"`
				State   string `json:"state"`
				Zip     string `json:"zip"`
			} `json:"address"`
		} `json:"creator"`
		Payload struct {
			Company *struct {
				Name string `json:"name"`
			} `json:"company"`
			Order *struct {
				Items []struct {
					Unit     string  `json:"unit"`
					Quantity float64 `json:"quantity"`
				} `json:"items"`
			} `json:"order"`
			Configuration map[string]json.RawMessage `json:"configuration"`
		} `json:"payload"`
	} `json:"event"`
}

// names is who to enroll: the creator, else the company.
func (o *order) names() (first, last string, ok bool) {
	switch c, co := o.Event.Creator, o.Event.Payload.Company; {
	case c != nil && (c.FirstName != "" || c.LastName != ""):
		return c.FirstName, c.LastName, true
	case co != nil && co.Name != "":
		return co.Name, "Administrator", true
	}
	return "", "", false
}

// process claims the delivery, makes the outside calls of its product's
// plan and stores the reply: the I/O no correct implementation can skip
// for a new delivery.
func (f *floor) process(ctx context.Context, extension, hash string, body []byte) answer {
	var o order
	if err := json.Unmarshal(body, &o); err != nil || o.SubscriptionID == "" {
		return failure(http.StatusBadRequest, "INVALID_RESPONSE", "the body is not a SubscriptionEvent with a subscription_id")
	}
	plan := planOf(extension)
	if refusal, ok := f.check(plan, &o); !ok {
		return refusal
	}
	claimed, err := f.rdb.SetNX(ctx, claimKey(hash), "1", claimTTL).Result()
	if err != nil {
		return unavailable("redis: " + err.Error())
	}
	if !claimed {
		return f.awaitOther(ctx, hash)
	}
	id, err := f.provision(ctx, plan, &o)
	if err != nil {
		_ = f.rdb.Del(context.WithoutCancel(ctx), claimKey(hash)).Err() // best effort: the claim expires anyway
		return unavailable(err.Error())
	}
	out := document(reply{Success: true, AccountIdentifier: id})
	if err := f.rdb.Set(ctx, replyKey(hash), out, f.cfg.EventTTL).Err(); err != nil {
		return unavailable("redis: " + err.Error())
	}
	return answer{status: http.StatusOK, body: out, stored: true}
}

// awaitOther polls for the reply of a delivery that another process claimed.
func (f *floor) awaitOther(ctx context.Context, hash string) answer {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.WaitForOther)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return pending()
		case <-tick.C:
		}
		stored, err := f.rdb.Get(ctx, replyKey(hash)).Bytes()
		if err == nil {
			return answer{status: http.StatusOK, body: stored, stored: true, replayed: true}
		}
	}
}
