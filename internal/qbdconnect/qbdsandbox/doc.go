// Package qbdsandbox is an in-memory QBD Connect System API for tests,
// demos and the default run: customers, instances, subscriptions and
// products under /qbdconnect-api/{version}/ (any version v1, v2, ...).
//
// It is one part of the sandbox (internal/sandbox), which mounts it
// through this interface, declared there and copied here so that this
// package imports neither the sandbox nor the client:
//
//	type Part interface {
//		Name() string     // "qbd"
//		Routes() []string // "qbd.POST /customers", "qbd.GET /customers", ... one per route
//		Register(mux *http.ServeMux, wrap func(route string, h http.HandlerFunc) http.HandlerFunc) // wrap counts calls and plays faults
//		Stats() any                                   // {"customers", "subscriptions", "instances", "quantity"}
//		Fail(w http.ResponseWriter, status, code int) // a fault's answer in QBD Connect's error shape (code unused)
//		Reset()
//	}
//
// It has its own wire types and shares no code with internal/qbdconnect/qbdapi: the
// client is tested against an independent reading of the seed
// (qbd-connect-api.txt).
//
// What the seed leaves open, decided here:
//   - Errors are {"status": 400, "error": "Bad Request", "message": "..."};
//     a 400 message names every bad field ("address.state must be at most 2
//     characters (got 3)"; "contact.email is required").
//   - Ids are generated: UUIDs for customers, instances and fileId;
//     "sub_" + 24 hex digits for a subscription created without its Stripe
//     subscriptionId. Server-owned fields in a create body (id, instanceId,
//     fileId, dateCreated) are ignored; qbdInstances is computed from the
//     instances, and a create that sends some is refused (use POST
//     /instances).
//   - GET /customers answers an array, filtered by ?gatewayCustomerId=,
//     which is unique: a second customer with the same one gets 409.
//   - PUT /instances/{id} replaces name (required), password, qbdPath and
//     frequencyInMinutes, and takes no other property. PATCH, which the seed
//     shows without a body, applies a JSON merge patch (RFC 7396) to the
//     instance; instanceId, customerId, fileId and dateCreated cannot
//     change. The password is write-only: never in a reply.
//   - PUT /subscriptions/{id} replaces the subscription (its id and
//     dateCreated are kept). status is one of Stripe's subscription
//     statuses (the seed lists none), "active" when absent; quantity is an
//     integer >= 0; customerId and productId, when set, must exist.
//   - DELETE /instances/{id} removes the instance (a second DELETE gets
//     404) and answers {"instanceId": id, "deleted": true}.
//   - Products are fixed: prod_qbd (QBD Connect), prod_qbd_support and an
//     inactive prod_qbd_legacy, each {id, name, description, active}.
//   - No token is required.
package qbdsandbox
