package outside

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
	"github.com/banking-marketplace/webhook/internal/store"
)

// Q2 fetches a token: it proves the client credentials, the base URL and
// the API version in one request. credentials is what to fix when Q2
// refuses the credentials; address when its token endpoint is not there.
func Q2(c *q2api.Client, credentials, address Advice) Check {
	return Check{Name: "q2", Title: "Q2", Call: c.CheckToken, Refused: func(err error) *Refusal {
		switch {
		case errors.Is(err, q2api.ErrTransient):
			return nil
		case errors.Is(err, q2api.ErrNotFound), errors.Is(err, q2api.ErrInvalidResponse):
			return &Refusal{Advice: address, What: "Q2's token endpoint is not there", Err: err}
		}
		return &Refusal{Advice: credentials, What: "Q2 refused the client credentials", Err: err}
	}}
}

// QBDConnect lists the products, the cheapest read of QBD Connect, with
// the token. token is what to fix when QBD Connect refuses the token;
// address when it does not answer GET /products.
func QBDConnect(c *qbdapi.Client, token, address Advice) Check {
	call := func(ctx context.Context) error {
		_, err := c.ListProducts(ctx)
		return err
	}
	return Check{Name: "qbd_connect", Title: "QBD Connect", Call: call, Refused: func(err error) *Refusal {
		switch {
		case errors.Is(err, qbdapi.ErrTransient):
			return nil
		case errors.Is(err, qbdapi.ErrUnauthorized):
			return &Refusal{Advice: token, What: "QBD Connect refused the token", Err: err}
		}
		return &Refusal{Advice: address, What: "QBD Connect did not answer GET /products", Err: err}
	}}
}

// PolicyReader reads Redis's maxmemory-policy (*store.Redis).
type PolicyReader interface {
	MaxmemoryPolicy(ctx context.Context) (string, error)
}

// evictingError is a Redis whose maxmemory-policy lets it delete keys.
type evictingError struct{ policy string }

func (e *evictingError) Error() string { return fmt.Sprintf("maxmemory-policy is %s", e.policy) }

// RedisPolicy reads Redis's maxmemory-policy. Anything but noeviction
// lets Redis delete keys when its memory is full, delivery records
// included, and an event whose record was deleted is processed again when
// a copy comes: that stops the start, and found later it is an error line
// and the "redis" state of /readyz. A managed Redis that hides the policy
// (CONFIG and INFO refused) is a warning, then left alone.
func RedisPolicy(db PolicyReader) Check {
	call := func(ctx context.Context) error {
		policy, err := db.MaxmemoryPolicy(ctx)
		if err == nil && policy != store.NoEviction {
			return &evictingError{policy}
		}
		return err
	}
	return Check{Name: "redis", Title: "Redis", Call: call, EveryProbe: true,
		Refused: func(err error) *Refusal {
			var ev *evictingError
			if !errors.As(err, &ev) {
				return nil
			}
			return &Refusal{
				Advice: Advice{
					Settings: "Redis maxmemory-policy",
					Fix:      "set it to noeviction: CONFIG SET maxmemory-policy noeviction (and in redis.conf), or the maxmemory-policy of the managed Redis's parameter group",
				},
				What:  "Redis may delete keys when its memory is full, delivery records included, and an event whose record is gone is processed twice",
				Err:   err,
				State: "evicting: " + err.Error(),
			}
		},
		Unchecked: func(err error) (string, bool) {
			if !errors.Is(err, store.ErrPolicyHidden) {
				return "", false
			}
			return "Redis refuses CONFIG and INFO (a managed Redis?), so its maxmemory-policy cannot be checked: make sure it is noeviction (the managed Redis's parameter group), " +
				"or Redis may delete delivery records when full and events are processed twice", true
		},
		Later: func(r *Refusal) string {
			return "Redis's " + r.Err.Error() + ", not noeviction: " + r.What + "; " + r.Fix
		},
		Back: "Redis's maxmemory-policy is noeviction again",
	}
}

// shortReason says in a few words why a check failed, for /readyz, which
// anyone who reaches the pod can read: no addresses, no message from the
// API. The log line has the whole error.
func shortReason(err error) string {
	var q2e *q2api.APIError
	var qbde *qbdapi.APIError
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &q2e):
		return fmt.Sprintf("HTTP %d", q2e.Status)
	case errors.As(err, &qbde):
		return fmt.Sprintf("HTTP %d", qbde.Status)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.As(err, &dns):
		return "host not found"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	case errors.Is(err, q2api.ErrInvalidResponse), errors.Is(err, qbdapi.ErrInvalidResponse):
		return "not the API's answer"
	case errors.Is(err, events.ErrUnavailable):
		return "no answer"
	}
	return "network error"
}
