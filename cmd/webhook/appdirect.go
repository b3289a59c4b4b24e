package main

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/banking-marketplace/webhook/internal/appdirect"
	"github.com/banking-marketplace/webhook/internal/appdirect/appdirectsandbox"
	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/metrics"
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/store"
)

// appDirectDoor wires AppDirect's own notifications: who may send them,
// where their eventUrl may point, the client that fetches events and
// posts results, and the inbox that receives them. In demo mode
// (sandboxURL set) the embedded sandbox plays the marketplace, with the
// consumer secret made up at start. nil, nil: the door is off.
func appDirectDoor(cfg *config, sandboxURL string, db *store.Redis, in *inbox.Inbox, answer func(context.Context, string) error,
	log *zap.Logger, m *metrics.Metrics, seen *systems) (*handlers.AppDirect, error) {
	a := cfg.AppDirect
	if cfg.Demo && sandboxURL != "" && !a.On() {
		a.Marketplaces = []string{sandboxURL}
		a.ConsumerKey, a.ConsumerSecrets = appdirectsandbox.DefaultConsumerKey, []string{embeddedAppDirectSecret}
	}
	if !a.On() {
		return nil, nil
	}
	if a.Product == "" {
		a.Product = onlyProduct(cfg.Catalog)
	}
	var auth appdirect.Notifications
	opts := []appdirect.Option{appdirect.WithLogger(log.Named("appdirect")), appdirect.WithObserver(observeCalls(log.Named("appdirect"), m, seen))}
	if a.ConsumerKey != "" {
		consumers := make([]appdirect.Consumer, len(a.ConsumerSecrets))
		for i, s := range a.ConsumerSecrets {
			consumers[i] = appdirect.Consumer{Key: a.ConsumerKey, Secret: s}
		}
		v, err := appdirect.NewVerifier(appdirect.VerifierConfig{Consumers: consumers, PublicURL: a.PublicURL, Nonces: db})
		if err != nil {
			return nil, &configError{msg: "APPDIRECT_CONSUMER_SECRET: " + err.Error()}
		}
		auth.OAuth = v
		opts = append(opts, appdirect.WithOAuth1(a.ConsumerKey, a.ConsumerSecrets[0], a.ConsumerSecrets[1:]...))
	}
	if len(a.NotifyTokens) > 0 || len(a.NotifyBasic) > 0 {
		cv, err := appdirect.NewCredentialVerifier(a.NotifyTokens, a.NotifyBasic)
		if err != nil {
			return nil, &configError{msg: "APPDIRECT_NOTIFY_TOKEN: " + err.Error()}
		}
		auth.Credentials = cv
		if a.ConsumerKey == "" {
			opts = append(opts, appdirect.WithOAuth2(a.ClientID, a.ClientSecret))
		}
	}
	client, err := appdirect.NewClient(a.Marketplaces, opts...)
	if err != nil {
		return nil, &configError{msg: "APPDIRECT_MARKETPLACES: " + err.Error()}
	}
	// The results queue is worked whether or not this replica answers
	// asynchronously: another replica, or this one before a restart with
	// APPDIRECT_ASYNC=false, may have queued results to post.
	// The passes begun at once after a 202 are bounded as the deliveries
	// are (MAX_IN_FLIGHT); past it, the settlers take the jobs.
	in.WithAppDirect(inbox.AppDirect{Marketplace: marketplace{client}, Owners: db, Jobs: db, Answer: answer, MaxAtOnce: cfg.MaxInFlight})
	log.Info("AppDirect door", zap.Strings("marketplaces", a.Marketplaces), zap.String("product", a.Product),
		zap.Bool("async", a.Async), zap.Bool("shared_credentials", a.ConsumerKey != ""))
	return &handlers.AppDirect{Notifier: in, Auth: auth, Check: client.EventURL, Marketplaces: client.Marketplaces(), Product: a.Product, Async: a.Async}, nil
}

// onlyProduct is the name of the catalog's one product, or "".
func onlyProduct(c *products.Catalog) string {
	if c != nil && len(c.Products) == 1 {
		return c.Products[0].Name
	}
	return ""
}

// marketplace is the AppDirect client as the inbox needs it: its failures
// in the inbox's kinds.
type marketplace struct{ *appdirect.Client }

// PostResult ends a job refused only when AppDirect itself refuses the
// result (a 4xx on the result route but 401, 403, 408 and 429). Whatever
// is of our own setup is retried until it is fixed: credentials or a
// token request refused (ErrUnauthorized), a marketplace this replica is
// not configured with (during a rolling update another replica may be),
// a result it cannot send (ErrBadArgument, sent nothing).
func (m marketplace) PostResult(ctx context.Context, marketplace, token string, result []byte) error {
	err := m.Client.PostResult(ctx, marketplace, token, result)
	if errors.Is(err, appdirect.ErrRefused) && !errors.Is(err, appdirect.ErrUnauthorized) {
		return fmt.Errorf("%w: %w", inbox.ErrResultRefused, err)
	}
	return err
}

func (m marketplace) FetchEvent(ctx context.Context, eventURL string) ([]byte, error) {
	b, err := m.Client.FetchEvent(ctx, eventURL)
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, appdirect.ErrUnauthorized):
		return nil, fmt.Errorf("%w: %w", inbox.ErrCredentialsRefused, err)
	case errors.Is(err, appdirect.ErrRefused):
		return nil, fmt.Errorf("%w: %w", inbox.ErrEventRefused, err)
	case errors.Is(err, appdirect.ErrInvalidResponse):
		return nil, fmt.Errorf("%w: %w", inbox.ErrEventUnreadable, err)
	}
	return nil, err
}
