// Package sandbox is an in-memory Q2 API for tests, demos, load tests and
// the default run: OAuth2 client-credentials tokens, Enrollment,
// LookupUser, LookupCustomer, DeleteUser, DeleteCustomer, AddExternalAccount
// and GetAccountList under any /{v1,v2}/ prefix, answering Q2's envelope
// {data, success, errors, requestid, status, log_ref_id}.
//
// Like Q2, a delete marks the user or customer and keeps it: lookups still
// return it with DeletedDate set, its logon name stays taken, and deleting
// it again answers 404. Every lookup goes through an index, so a call costs
// the same with a thousand users as with a million: the sandbox must never
// be the bottleneck of a load test.
//
// It has its own wire types and does not import the client: the client is
// tested against an independent reading of the Q2 documentation.
//
// Other outside APIs (QBD Connect, Helix) are served beside Q2 as a Part:
// New(cfg, parts...) registers their routes, counts their calls, plays
// their faults in their own error envelope, puts their block in the stats
// and resets them. A Part uses only standard-library types, so parts never
// import this package.
//
// For tests it also counts calls per route, injects faults (an error status,
// a part's error code and/or a delay for the next N calls of a route) and
// resets, both as Go methods (Stats, SetFault, Reset) and as routes under
// /_sandbox/.
//
// GetAccountList, whose published sample is wrong, answers data as a list of
// {AccountID, AccountNumber, AccountType, Description, ABA, Balance,
// IsExternal, AllowDeposit, AllowWithdrawal}. Tokens report expires_in in
// whole seconds, rounded down: a TokenTTL under a second reports 0, which
// clients take as "no expiry", so they meet the 401 of an expired token.
package sandbox
