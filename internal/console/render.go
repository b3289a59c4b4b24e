package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// pageNames are the templates of templates/, one a page; each is parsed
// with layout.html and parts.html.
var pageNames = []string{"signin", "overview", "subscription", "delivery", "search", "failures", "unsettled", "error"}

// pages are the parsed templates and the static files' versions.
type pages struct {
	t       map[string]*template.Template
	static  map[string][]byte
	version map[string]string // file → a hash of its bytes, for URLs that may be cached for good
}

func loadPages(c *Console) (*pages, error) {
	p := &pages{t: map[string]*template.Template{}, static: map[string][]byte{}, version: map[string]string{}}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(c.funcs(time.Time{})).ParseFS(templateFiles,
			"templates/layout.html", "templates/parts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parsing the %s page: %w", name, err)
		}
		p.t[name] = t
	}
	err := fs.WalkDir(staticFiles, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFiles.ReadFile(name)
		if err != nil {
			return err
		}
		base := path.Base(name)
		sum := sha256.Sum256(b)
		p.static[base], p.version[base] = b, hex.EncodeToString(sum[:6])
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("console: reading the static files: %w", err)
	}
	return p, nil
}

// static is GET /console/static/{file}: the console's own files, cached
// for good when asked for with their version (the pages always are).
func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, ok := c.pages.static[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(name)))
	if r.URL.Query().Get("v") == c.pages.version[name] {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	_, _ = w.Write(b)
}

// pageData is what the layout shows around every page.
type pageData struct {
	Title    string
	Nav      string // the nav entry to mark: overview, failures, unsettled, search
	Operator string // "" when signed out
	CSRF     string
	Now      time.Time
	Flash    *Flash
	Query    string // the search box's text
	Refresh  int    // seconds between reloads; 0: off
	// RefreshOn and RefreshOff are this page's URL with refresh on and off.
	RefreshOn, RefreshOff string
	CSS                   string // the stylesheet's versioned path
	Data                  any
}

// refreshEvery is the opt-in reload period (?refresh=30): a meta refresh,
// no script.
const refreshEvery = 30

// render writes page name with data, for s (nil: signed out). The page is
// rendered whole before anything is sent, so that a template error is a
// clean 500.
func (c *Console) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	now := c.cfg.Now()
	pd := pageData{Title: title, Nav: name, Now: now, Data: data,
		CSS: Prefix + "static/console.css?v=" + c.pages.version["console.css"]}
	if s != nil {
		pd.Operator, pd.CSRF = s.Operator, s.CSRF
		if s.Flash != nil {
			pd.Flash, s.Flash = s.Flash, nil
			c.save(r, s)
		}
	}
	if q, ok := data.(interface{ query() string }); ok {
		pd.Query = q.query()
	}
	if r.Method == http.MethodGet && status == http.StatusOK && s != nil {
		u := *r.URL
		v := u.Query()
		if v.Get("refresh") != "" {
			pd.Refresh = refreshEvery
		}
		v.Del("refresh")
		u.RawQuery = v.Encode()
		pd.RefreshOff = u.RequestURI()
		v.Set("refresh", strconv.Itoa(refreshEvery))
		u.RawQuery = v.Encode()
		pd.RefreshOn = u.RequestURI()
	}
	t, err := c.pages.t[name].Clone()
	if err == nil {
		t.Funcs(c.funcs(now))
		var buf bytes.Buffer
		if err = t.ExecuteTemplate(&buf, "layout", pd); err == nil {
			h := w.Header()
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(status)
			_, _ = buf.WriteTo(w)
			return
		}
	}
	c.log.Error("console: a page failed to render", zap.String("page", name), zap.Error(err))
	http.Error(w, "the console failed to render this page; the service's log says why", http.StatusInternalServerError)
}

type errorData struct {
	Title, Text string
	Status      int
}

// renderError writes an error page: what went wrong and what to do.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, status int, title, text string) {
	c.render(w, r, s, status, "error", title, errorData{Title: title, Text: text, Status: status})
}

// funcs are the templates' functions, with now as the clock of relative
// times (each page is rendered at one instant).
func (c *Console) funcs(now time.Time) template.FuncMap {
	return template.FuncMap{
		"when": func(t time.Time) template.HTML { return when(now, t) },
		"age":  func(t time.Time) string { return age(now, t) },
		"utc":  utc,
		"dur":  duration,
		"status": func(n int) string {
			if n == 0 {
				return "—"
			}
			return strconv.Itoa(n)
		},
		"outcome":       outcomeBadge,
		"failed":        failed,
		"deliveryState": deliveryStateBadge,
		"kindText":      attemptKindText,
		"statusBadge":   statusBadge,
		"intentBadge":   intentBadge,
		"systemBadge":   systemBadge,
		"systemHelp":    systemHelp,
		"systemName":    systemName,
		"stepBadge":     func(intent string, st Step) badge { return stepOf(intent, st).Badge },
		"scrub":         scrub,
		"subURL":        func(id string) string { return Prefix + "subscriptions/" + url.PathEscape(id) },
		"deliveryURL":   func(key string) string { return Prefix + "deliveries/" + url.PathEscape(key) },
		"settleURL":     func(id string) string { return Prefix + "subscriptions/" + url.PathEscape(id) + "/settle" },
		"traceURL":      c.traceURL,
		"callClass": func(cl Call) string {
			switch {
			case cl.Status >= 200 && cl.Status < 400:
				return classOK
			case cl.Status == 0 || cl.Status == 429 || cl.Status >= 500:
				return classWarn
			}
			return classBad
		},
		"plural": func(n int, one, many string) string {
			if n == 1 {
				return "1 " + one
			}
			return strconv.Itoa(n) + " " + many
		},
		"add": func(a, b int) int { return a + b },
	}
}

// when is t relative and absolute: a <time> element that says "3 min ago"
// with the UTC time beside it. Built from the time alone, never from
// stored text, so it needs no escaping.
func when(now, t time.Time) template.HTML {
	if t.IsZero() {
		return `<span class="muted">—</span>`
	}
	return template.HTML(fmt.Sprintf(`<time datetime="%s" title="%s">%s</time> <span class="abs">%s</span>`,
		t.UTC().Format(time.RFC3339), utc(t), ago(now, t), utc(t)))
}

var traceID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// traceURL is the link of a trace id in CONSOLE_TRACE_URL, or "" when
// there is no template or the id is not a W3C trace id.
func (c *Console) traceURL(id string) string {
	if c.cfg.TraceURL == "" || !traceID.MatchString(id) {
		return ""
	}
	return strings.ReplaceAll(c.cfg.TraceURL, "{trace_id}", id)
}
