// Package q2sandbox is the in-memory Q2 API, a part of the sandbox
// (internal/sandbox) for tests, demos, load tests and the default run:
// OAuth2 client-credentials tokens, Enrollment, LookupUser,
// LookupCustomer, DeleteUser, DeleteCustomer, AddExternalAccount and
// GetAccountList under any /{v1,v2}/ prefix, answering Q2's envelope
// {data, success, errors, requestid, status, log_ref_id}.
//
// Like Q2, a delete marks the user or customer and keeps it: lookups still
// return it with DeletedDate set, its logon name stays taken, and deleting
// it again answers 404. Every lookup goes through an index, so a call costs
// the same with a thousand users as with a million: the sandbox must never
// be the bottleneck of a load test.
//
// It has its own wire types and imports neither the client
// (internal/q2/q2api) nor the sandbox: the client is tested against an
// independent reading of the Q2 documentation, and the sandbox mounts it
// through its Part interface, which this package satisfies with
// standard-library types. Its routes count as "token" and each action's
// name; a fault on the token route answers an OAuth2 error, on the others
// Q2's envelope, and none takes an error code. Its stats, "users" and
// "customers", stand at the top level of /_sandbox/stats.
//
// GetAccountList, whose published sample is wrong, answers data as a list of
// {AccountID, AccountNumber, AccountType, Description, ABA, Balance,
// IsExternal, AllowDeposit, AllowWithdrawal}. Tokens report expires_in in
// whole seconds, rounded down: a TokenTTL under a second reports 0, which
// clients take as "no expiry", so they meet the 401 of an expired token.
package q2sandbox
