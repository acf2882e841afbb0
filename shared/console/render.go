package console

import (
	"bytes"
	"embed"
	"html/template"
	"io/fs"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

//go:embed templates
var templateFS embed.FS

// parsePages parses every page once, each together with the layout and
// the parts pages share, so a template error stops kve at start rather
// than on a user's request.
func parsePages(funcs template.FuncMap) map[string]*template.Template {
	files, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(f, "templates/"), ".html")
		if name == "layout" || name == "partials" {
			continue
		}
		pages[name] = template.Must(template.New(name).Funcs(funcs).
			ParseFS(templateFS, "templates/layout.html", "templates/partials.html", f))
	}
	return pages
}

func (s *server) funcs() template.FuncMap {
	return template.FuncMap{
		"asset": func(name string) (string, error) {
			u, err := s.assets.url(name)
			return s.base + u, err
		},
		"base": func() string { return s.base },
		"date": func(t time.Time) string {
			if t.IsZero() {
				return "never"
			}
			return t.UTC().Format("2006-01-02 15:04 UTC")
		},
		"datetime": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"envs":     func() []string { return envs },
		"expiries": func() []expiry { return expiries },
		"count":    count,
		"usd":      usd,
	}
}

// expiry is a choice of the create form's lifetime field (manage's
// expires_in).
type expiry struct{ Value, Label string }

var expiries = []expiry{
	{"", "Default (dev: 30 days, else never)"},
	{"1d", "1 day"}, {"7d", "7 days"}, {"30d", "30 days"}, {"90d", "90 days"}, {"365d", "1 year"},
}

// layout is what every page shows around its own content: who is signed
// in, the organization switcher and the navigation of the current
// organization.
type layout struct {
	Title  string
	User   *userView
	Orgs   []orgLink
	Org    *orgLink // the organization the page belongs to, if any
	Nav    []navItem
	Notice string // a confirmation after a redirect (?done=…)
}

type userView struct {
	Name, Email string
}

type orgLink struct {
	Name, Slug string
	Role       kve.Role
	Current    bool
}

type navItem struct {
	Label, Href string
	Current     bool
}

// pages are an organization's pages in the navigation, in order, with the
// roles that may open each (DESIGN §8); manage refuses the others anyway.
// Developers see the usage of their own personal tokens only.
var pages = []struct {
	label, path string
	roles       []kve.Role
}{
	{"Tokens", "/tokens", allRoles},
	{"Keys", "/keys", ownerRole},
	{"Members", "/members", allRoles},
	{"Usage", "/usage", allRoles},
	{"Alerts", "/alerts", managerRoles},
	{"Audit log", "/audit", managerRoles},
	{"Billing", "/billing", ownerRole},
	{"Settings", "/settings", allRoles},
}

var (
	allRoles     = []kve.Role{kve.RoleOwner, kve.RoleAdmin, kve.RoleDeveloper}
	managerRoles = []kve.Role{kve.RoleOwner, kve.RoleAdmin}
	ownerRole    = []kve.Role{kve.RoleOwner}
)

// nav lists the pages of the organization at base that role may open,
// marking current.
func nav(base string, role kve.Role, current string) []navItem {
	var items []navItem
	for _, p := range pages {
		if slices.Contains(p.roles, role) {
			items = append(items, navItem{Label: p.label, Href: base + p.path, Current: p.label == current})
		}
	}
	return items
}

func managerRole(r kve.Role) bool { return r == kve.RoleOwner || r == kve.RoleAdmin }

// notices are the confirmations a redirect may ask a page to show: fixed
// sentences chosen by code, so the query string cannot put text on a page.
var notices = map[string]string{
	"token_revoked":     "Token revoked. The proxy refuses it from the next request on.",
	"token_updated":     "Token updated. The proxy applies the new rules from the next request on.",
	"key_added":         "Key saved. Its value is stored and will never be shown again; only its reference is.",
	"key_rotated":       "Key rotated. Every token that uses it sends the new value from the next request on.",
	"key_deleted":       "Key deleted.",
	"org_created":       "Organization created. You are its Owner.",
	"password_changed":  "Password changed. Every other session and API token of yours is signed out.",
	"api_token_revoked": "API token revoked.",
	"sessions_ended":    "Signed out everywhere else. This browser stays signed in.",
	"invite_sent":       "Invite sent. Its link works once; the invite is listed below until it is accepted or expires.",
	"invite_revoked":    "Invite revoked. Its link no longer works.",
	"role_changed":      "Role changed. It applies from the member's next request on.",
	"joined":            "Welcome! You are now a member of this organization.",
	"org_renamed":       "Organization renamed. Its address stays the same.",
	"org_deleted":       "Organization deleted. Its tokens no longer work.",
	"token_alerting":    "Breach alert settings saved.",
	"token_suspended":   "Token suspended. The proxy refuses it from the next request on, until you resume it.",
	"token_resumed":     "Token resumed. The proxy accepts it again from the next request on.",
	"incident_acked":    "Incident acknowledged. A new breach of the same kind on the token opens it again.",
	"subscribed":        "Subscription added. The endpoint gets a confirmation request first, and alerts only once it confirms.",
	"unsubscribed":      "Subscription deleted. The endpoint gets no more alerts.",
	"alert_tested":      "Test alert sent to every confirmed subscription.",
	"billing_updated":   "Billing settings saved. The proxy applies a new budget within seconds.",
	"prices_updated":    "Prices saved. New requests are priced with them; past requests keep their cost.",
}

// view is what a page template executes on.
type view struct {
	Page layout
	Data any
}

// render writes page name with status. title names the page in the
// browser's tab; current is the navigation entry to mark.
func (s *server) render(w http.ResponseWriter, r *http.Request, status int, name, title, current string, data any) error {
	t, ok := s.pages[name]
	if !ok {
		return kve.Errorf(kve.KindInternal, "internal", "no page template %q", name)
	}
	lay, err := s.layout(r, title, current)
	if err != nil {
		return err
	}
	// Rendered into a buffer, so that a template failure can still become
	// an error page instead of half a page.
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", view{Page: lay, Data: data}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	buf.WriteTo(w) // an error here is the client gone
	return nil
}

func (s *server) layout(r *http.Request, title, current string) (layout, error) {
	lay := layout{Title: title, Notice: notices[r.URL.Query().Get("done")]}
	c, ok := callerOf(r)
	if !ok {
		return lay, nil
	}
	lay.User = &userView{Name: c.p.Name, Email: c.p.Email}
	ms, err := s.orgs(r)
	if err != nil {
		return lay, err
	}
	for _, m := range ms {
		l := orgLink{Name: m.Org.Name, Slug: m.Org.Slug, Role: m.Role, Current: m.Org.ID == c.m.Org.ID}
		lay.Orgs = append(lay.Orgs, l)
		if l.Current {
			lay.Org = &l
			lay.Nav = nav(s.base+"/o/"+l.Slug, l.Role, current)
		}
	}
	return lay, nil
}

// statuses maps each error kind to its HTTP status, as the JSON API does.
var statuses = map[kve.Kind]int{
	kve.KindInvalid:         http.StatusUnprocessableEntity,
	kve.KindUnauthenticated: http.StatusUnauthorized,
	kve.KindForbidden:       http.StatusForbidden,
	kve.KindNotFound:        http.StatusNotFound,
	kve.KindConflict:        http.StatusConflict,
	kve.KindGone:            http.StatusGone,
	kve.KindTooLarge:        http.StatusRequestEntityTooLarge,
	kve.KindRateLimited:     http.StatusTooManyRequests,
	kve.KindUnavailable:     http.StatusServiceUnavailable,
	kve.KindInternal:        http.StatusInternalServerError,
}

type errorView struct {
	Status    int
	Message   string
	RequestID string
}

// fail renders err as an error page with the status of its kind; a missing
// or expired session goes to the login page instead. Only the user-safe
// message is shown; internal and unavailable errors are logged here, once,
// with their cause.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	kind := kve.KindOf(err)
	status, ok := statuses[kind]
	if !ok {
		kind, status = kve.KindInternal, http.StatusInternalServerError
	}
	id := requestID(r.Context())
	switch kind {
	case kve.KindUnauthenticated:
		s.toLogin(w, r)
		return
	case kve.KindInternal:
		s.log.ErrorContext(r.Context(), "console_error", "request_id", id, "route", r.Pattern, "err", err)
	case kve.KindUnavailable:
		s.log.WarnContext(r.Context(), "console_unavailable", "request_id", id, "route", r.Pattern, "err", err)
	case kve.KindRateLimited:
		setRetryAfter(w, err)
	}
	v := errorView{Status: status, Message: kve.MessageOf(err), RequestID: id}
	if rerr := s.render(w, r, status, "error", http.StatusText(status), "", v); rerr != nil {
		// The layout itself failed (the store is down, say): a bare page.
		s.log.ErrorContext(r.Context(), "console_render_failed", "request_id", id, "err", rerr)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		w.Write([]byte(http.StatusText(status) + " (request " + id + ")\n"))
	}
}

func setRetryAfter(w http.ResponseWriter, err error) {
	after := 60.0
	if d, ok := manage.RetryAfter(err); ok {
		after = math.Max(1, math.Ceil(d.Seconds()))
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(after)))
}

// redirect answers with 303 See Other to a path of the dashboard: after a
// POST, so that reloading the page it leads to repeats no action.
func (s *server) redirect(w http.ResponseWriter, r *http.Request, to string) error {
	http.Redirect(w, r, s.base+to, http.StatusSeeOther)
	return nil
}
