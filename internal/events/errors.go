package events

import "errors"

// Errors of the records the use cases keep (deliveries, accounts, locks),
// matched with errors.Is. They live here, not in the Redis adapter, so that
// the use cases name them without importing it.
var (
	// ErrUnavailable means the record store could not be reached or
	// answered with an error. Nothing final was recorded; the delivery is
	// answered as transient so that the marketplace sends it again.
	ErrUnavailable = errors.New("record store unavailable")
	// ErrNotFound means there is no such record.
	ErrNotFound = errors.New("not found")
	// ErrLeaseLost means a fenced write came from a holder whose lease ran
	// out (or was released): someone else may own the delivery or the
	// subscription now, so nothing was written.
	ErrLeaseLost = errors.New("lease lost")
	// ErrBusy means a lock was held by someone else for the whole wait.
	ErrBusy = errors.New("lock busy")
)
