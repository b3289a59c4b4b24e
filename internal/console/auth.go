package console

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// session is the signed-in operator of one request.
type session struct {
	key string
	Session
}

// touchEvery bounds the writes that keep a session alive: its Seen is
// stored again at most this often, so the idle timeout is exact to it.
const touchEvery = time.Minute

// maxForm bounds the body of every form posted to the console.
const maxForm = 8 << 10

type handler func(w http.ResponseWriter, r *http.Request, s *session)

// page wraps a page that needs a signed-in operator: without a session it
// sends the browser to sign in and back.
func (c *Console) page(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, expired, err := c.session(w, r)
		switch {
		case err != nil:
			c.sessionsDown(w, r)
			return
		case s == nil:
			c.toSignIn(w, r, r.URL.RequestURI(), expired)
			return
		}
		h(w, r, s)
	}
}

// action wraps a POST: a signed-in operator and the session's form token,
// compared in constant time (the cross-origin check ran before).
func (c *Console) action(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxForm)
		s, expired, err := c.session(w, r)
		switch {
		case err != nil: // the action is not done, and not taken for a sign-out
			c.sessionsDown(w, r)
			return
		case s == nil:
			c.log.Info("console: an action without a session was refused", zap.String("path", r.URL.Path), zap.Bool("expired", expired))
			c.toSignIn(w, r, "", expired)
			return
		}
		if err := r.ParseForm(); err != nil {
			c.renderError(w, r, s, http.StatusBadRequest, "That form could not be read", "Reload the page and try again.")
			return
		}
		got := r.PostForm.Get("csrf")
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.CSRF)) != 1 {
			c.log.Warn("console: an action without its form token was refused", zap.String("operator", s.Operator), zap.String("path", r.URL.Path))
			c.renderError(w, r, s, http.StatusForbidden, "Refused: the form's token is missing or stale",
				"Reload the page (your session may have been renewed) and press the button again.")
			return
		}
		h(w, r, s)
	}
}

// session returns the request's live session, or nil; expired says a
// cookie named one that has timed out or is gone (then the cookie is
// cleared and the store forgets it). err: the session store did not
// answer, so whether the operator is signed in is not known.
func (c *Console) session(w http.ResponseWriter, r *http.Request) (s *session, expired bool, err error) {
	ck, cerr := r.Cookie(c.cookie)
	if cerr != nil || ck.Value == "" {
		return nil, false, nil
	}
	key := sessionKey(ck.Value)
	got, err := c.cfg.Sessions.Get(r.Context(), key)
	switch {
	case errors.Is(err, ErrNoSession):
		c.clearCookie(w)
		return nil, true, nil
	case err != nil:
		c.log.Warn("console: the session store did not answer", zap.Error(err))
		return nil, false, err
	}
	now := c.cfg.Now()
	if now.Sub(got.Seen) >= c.cfg.IdleTimeout || now.Sub(got.Created) >= c.cfg.MaxAge {
		c.log.Info("console: a session expired", zap.String("operator", got.Operator),
			zap.Bool("idle", now.Sub(got.Seen) >= c.cfg.IdleTimeout))
		_ = c.cfg.Sessions.Delete(r.Context(), key)
		c.clearCookie(w)
		return nil, true, nil
	}
	s = &session{key: key, Session: got}
	if now.Sub(got.Seen) >= touchEvery {
		s.Seen = now
		c.save(r, s)
	}
	return s, false, nil
}

// sessionsDown answers a request whose session could not be read: 503,
// to be tried again, never taken for a signed-out operator (an action
// would be dropped on the way to the sign-in page).
func (c *Console) sessionsDown(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "5")
	c.renderError(w, r, nil, http.StatusServiceUnavailable, "The session store did not answer",
		"Nothing was done; try again in a moment. If it lasts, the service's readiness (/readyz) says whether Redis is reachable.")
}

// save stores s for as long as it may live: until its idle timeout, cut at
// its absolute one.
func (c *Console) save(r *http.Request, s *session) {
	ttl := min(c.cfg.IdleTimeout, c.cfg.MaxAge-s.Seen.Sub(s.Created))
	switch err := c.cfg.Sessions.Refresh(r.Context(), s.key, s.Session, ttl); {
	case errors.Is(err, ErrNoSession): // signed out meanwhile: it stays out
	case err != nil:
		c.log.Warn("console: the session store did not answer", zap.Error(err))
	}
}

func (c *Console) setCookie(w http.ResponseWriter, id string) {
	ck := &http.Cookie{Name: c.cookie, Value: id, Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.MaxAge / time.Second)}
	if c.cfg.Demo {
		ck.Path, ck.Secure = Prefix, false
	}
	http.SetCookie(w, ck)
}

func (c *Console) clearCookie(w http.ResponseWriter) {
	ck := &http.Cookie{Name: c.cookie, Value: "", Path: "/", Secure: true, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1}
	if c.cfg.Demo {
		ck.Path, ck.Secure = Prefix, false
	}
	http.SetCookie(w, ck)
}

// toSignIn sends the browser to the sign-in page, which comes back to next.
func (c *Console) toSignIn(w http.ResponseWriter, r *http.Request, next string, expired bool) {
	q := url.Values{}
	if next = safeNext(next); next != Prefix {
		q.Set("next", next)
	}
	if expired {
		q.Set("expired", "1")
	}
	to := Prefix + "signin"
	if len(q) > 0 {
		to += "?" + q.Encode()
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// safeNext is next when it is a path of the console, else the overview: a
// sign-in link cannot send the browser anywhere else.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, Prefix) ||
		strings.Contains(next, "//") || strings.Contains(next, `\`) || strings.HasPrefix(u.Path, Prefix+"signin") {
		return Prefix
	}
	return u.RequestURI()
}

type signInData struct {
	Next         string
	Expired      bool
	Error        string
	Idle, MaxAge string // the session's timeouts, for people
}

// signInPage is GET /console/signin.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	next := safeNext(r.URL.Query().Get("next"))
	if s, _, _ := c.session(w, r); s != nil {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusOK, signInData{Next: next, Expired: r.URL.Query().Get("expired") == "1"})
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData) {
	d.Idle, d.MaxAge = span(c.cfg.IdleTimeout), span(c.cfg.MaxAge)
	c.render(w, r, nil, status, "signin", "Sign in", d)
}

// span is a timeout for people: "30 min", "12 h".
func span(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d.Round(time.Minute)/time.Minute)) + " min"
}

// signIn is POST /console/signin: a read API token for a new session, under
// a new id (never one the browser brought).
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		c.renderSignIn(w, r, http.StatusBadRequest, signInData{Next: Prefix, Error: "That form could not be read; try again."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	label, ok := c.match(strings.TrimSpace(r.PostForm.Get("token")))
	if !ok {
		c.log.Info("console: a sign-in was refused: the token is not one of API_TOKENS")
		c.renderSignIn(w, r, http.StatusUnauthorized,
			signInData{Next: next, Error: "That token is not one of the read API's tokens (API_TOKENS). Check it and try again."})
		return
	}
	if old, err := r.Cookie(c.cookie); err == nil && old.Value != "" {
		_ = c.cfg.Sessions.Delete(r.Context(), sessionKey(old.Value))
	}
	now := c.cfg.Now()
	id := newID()
	s := &session{key: sessionKey(id), Session: Session{Operator: label, CSRF: newID(), Created: now, Seen: now}}
	if err := c.cfg.Sessions.Put(r.Context(), s.key, s.Session, min(c.cfg.IdleTimeout, c.cfg.MaxAge)); err != nil {
		c.log.Warn("console: a sign-in failed: the session store did not answer", zap.String("operator", label), zap.Error(err))
		c.renderSignIn(w, r, http.StatusServiceUnavailable,
			signInData{Next: next, Error: "The session store did not answer; try again in a moment."})
		return
	}
	c.setCookie(w, id)
	c.log.Info("console: signed in", zap.String("operator", label))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut is POST /console/signout: the session is forgotten on the server.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.cfg.Sessions.Delete(r.Context(), s.key); err != nil {
		c.log.Warn("console: the session store did not answer", zap.Error(err))
	}
	c.clearCookie(w)
	c.log.Info("console: signed out", zap.String("operator", s.Operator))
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}
