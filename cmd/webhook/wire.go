package main

import (
	"fmt"

	"github.com/banking-marketplace/webhook/internal/handlers"
	"github.com/banking-marketplace/webhook/internal/helix"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/inbox"
	"github.com/banking-marketplace/webhook/internal/metrics"
	"github.com/banking-marketplace/webhook/internal/products"
	"github.com/banking-marketplace/webhook/internal/provisioning"
	"github.com/banking-marketplace/webhook/internal/q2"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/qbdconnect"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
	"github.com/banking-marketplace/webhook/internal/settler"
	"github.com/banking-marketplace/webhook/internal/store"
)

// The adapters satisfy the interfaces the use cases declare; this is the
// one place that knows both sides.
var (
	_ inbox.Deliveries      = (*store.Redis)(nil)
	_ inbox.Processor       = (*provisioning.Service)(nil)
	_ inbox.Primer          = (*provisioning.Service)(nil) // the inbox finds it by assertion: a drift would switch priming off
	_ provisioning.Accounts = (*store.Redis)(nil)
	_ handlers.Receiver     = (*inbox.Inbox)(nil)
	_ handlers.Products     = (*products.Catalog)(nil)
	_ q2.API                = (*q2api.Client)(nil)
	_ provisioning.Target   = (*q2.Target)(nil)
	_ provisioning.Observer = (*metrics.Metrics)(nil)
	_ handlers.Reader       = (*store.Redis)(nil)
	_ settler.Queue         = (*store.Redis)(nil)
	_ settler.Settler       = (*provisioning.Service)(nil)
	_ settler.Observer      = (*metrics.Metrics)(nil)
)

// targets are the clients of the outside systems products provision in.
type targets struct {
	sandbox string // demo mode's embedded sandbox (base URL), "" otherwise
	q2      *q2api.Client
	qbd     *qbdapi.Client
	helix   *helixapi.Client
}

// plans builds each product's plan: its targets, in order, with its
// settings. CANCEL_DELETES is the default of a product's q2.cancel_deletes.
func plans(catalog *products.Catalog, t targets, cfg *config) ([]provisioning.Plan, error) {
	var out []provisioning.Plan
	for _, p := range catalog.Products {
		plan := provisioning.Plan{Product: p.Name}
		for _, name := range p.Targets {
			target, err := newTarget(name, p, t, cfg)
			if err != nil {
				return nil, fmt.Errorf("product %q: %s: %w", p.Name, name, err)
			}
			plan.Targets = append(plan.Targets, target)
		}
		out = append(out, plan)
	}
	return out, nil
}

func newTarget(name string, p products.Product, t targets, cfg *config) (provisioning.Target, error) {
	switch name {
	case products.TargetQ2:
		s := q2.Settings{CancelDeletes: q2.CancelDeletes(cfg.CancelDeletes)}
		if p.Q2 != nil {
			s.GroupID, s.UserRoleID = p.Q2.GroupID, p.Q2.UserRoleID
			if p.Q2.CancelDeletes != "" {
				s.CancelDeletes = q2.CancelDeletes(p.Q2.CancelDeletes)
			}
		}
		return q2.New(t.q2, s)
	case products.TargetHelix:
		var s helix.Settings
		if p.Helix != nil {
			s = helix.Settings{Entitlement: p.Helix.Entitlement, Editions: p.Helix.Editions}
		}
		return helix.New(t.helix, s)
	case products.TargetQBDConnect:
		return qbdconnect.New(t.qbd, qbdconnect.Settings{ProductID: p.QBDConnect.ProductID})
	}
	return nil, fmt.Errorf("the %q target is not built yet", name)
}
