package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/banking-marketplace/webhook/internal/appdirect"
	"github.com/banking-marketplace/webhook/internal/events"
	"github.com/banking-marketplace/webhook/internal/helix/helixapi"
	"github.com/banking-marketplace/webhook/internal/httpcall"
	"github.com/banking-marketplace/webhook/internal/q2/q2api"
	"github.com/banking-marketplace/webhook/internal/qbdconnect/qbdapi"
)

// callOf is an outside call's attempt as a delivery's history keeps it:
// ids, status, duration and a class of its failure in our words, never a
// body or the outside system's own message (which may quote personal
// data).
func callOf(a httpcall.Attempt) events.Call {
	c := events.Call{System: a.System, Action: a.Action, Status: a.Status, Duration: a.Duration, RequestID: a.RequestID}
	if a.Err != nil {
		c.Error = errorClass(a.Err)
	}
	return c
}

// kindWords name the clients' kinds of failure that say more than the
// status does, first match wins.
var kindWords = []struct {
	err  error
	word string
}{
	{q2api.ErrRateLimited, "rate limited"},
	{q2api.ErrAlreadyExists, "already exists"},
	{q2api.ErrNotFound, "not found"},
	{q2api.ErrUnauthorized, "unauthorized"},
	{q2api.ErrForbidden, "forbidden"},
	{q2api.ErrInvalidResponse, "invalid reply"},
	{qbdapi.ErrNotFound, "not found"},
	{qbdapi.ErrBadRequest, "bad request"},
	{qbdapi.ErrUnauthorized, "unauthorized"},
	{qbdapi.ErrConflict, "conflict"},
	{qbdapi.ErrInvalidResponse, "invalid reply"},
	{helixapi.ErrUnauthorized, "unauthorized"},
	{helixapi.ErrInvalidRequest, "invalid request"},
	{helixapi.ErrInvalidResponse, "invalid reply"},
	{appdirect.ErrUnauthorized, "unauthorized"},
	{appdirect.ErrNotFound, "not found"},
	{appdirect.ErrRefused, "refused"},
	{appdirect.ErrInvalidResponse, "invalid reply"},
	{httpcall.ErrOutsideBase, "outside the base URL"},
}

// errorClass says in a few words of ours why a call failed: Helix's codes
// ("helix 195107"), a client's kind of failure ("already exists"), or,
// when no answer came, how the exchange failed ("timeout", "connection
// refused"). "" when the status says it all (a 503).
func errorClass(err error) string {
	if e, ok := errors.AsType[*helixapi.APIError](err); ok && len(e.Codes) > 0 {
		codes := make([]string, len(e.Codes))
		for i, c := range e.Codes {
			codes[i] = strconv.Itoa(c)
		}
		return "helix " + strings.Join(codes, ",")
	}
	for _, k := range kindWords {
		if errors.Is(err, k.err) {
			return k.word
		}
	}
	var sc interface{ StatusCode() int }
	if errors.As(err, &sc) && sc.StatusCode() > 0 {
		return ""
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, httpcall.ErrNotSent):
		return "not sent"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	}
	return "transport error"
}
