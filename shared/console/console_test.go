package console_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/console"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

// publicURL is where the test deployment says users reach it.
const publicURL = "https://kve.example.com"

// site is the dashboard over manage on the embedded backends, with the team
// of managetest (Acme Labs: Owner, Admin, two Developers, an outsider, an
// openai key named "main").
type site struct {
	*managetest.Team
	h http.Handler
}

func newSite(t *testing.T) *site {
	t.Helper()
	tm := managetest.NewTeam(t)
	return &site{Team: tm, h: handler(tm.Env)}
}

func handler(e *managetest.Env) http.Handler {
	return console.New(e.Service, console.Config{
		Logger:    e.Logs.Logger(),
		PublicURL: publicURL,
		Now:       e.Clock.Now,
	})
}

// as returns a browser signed in as u. Users other than the Owner have no
// password (managetest adds them directly), so their session is written to
// the store as a login would write it.
func (s *site) as(t *testing.T, u managetest.User) *visitor {
	t.Helper()
	now := s.Clock.Now()
	v := kve.NewSessionID()
	sess := kve.Session{ID: kve.NewID(kve.PrefixSession, now), UserID: u.ID, Kind: kve.SessionBrowser,
		Hash: s.Keyring.Hash(v.Reveal()), CreatedAt: now, ExpiresAt: now.Add(12 * time.Hour), LastSeen: now}
	if err := s.Store.CreateSession(context.Background(), sess); err != nil {
		t.Fatalf("create session: %v", err)
	}
	b := newVisitor(t, s.h)
	b.cookies[console.PlainCookie] = &http.Cookie{Name: console.PlainCookie, Value: v.Reveal()}
	return b
}

// owner signs the Owner in through the login form.
func (s *site) owner(t *testing.T) *visitor {
	t.Helper()
	b := newVisitor(t, s.h)
	res := b.post("/login", url.Values{"email": {managetest.OwnerEmail}, "password": {managetest.OwnerPassword.Reveal()}})
	if res.Status != http.StatusSeeOther {
		t.Fatalf("login: status %d\n%s", res.Status, res.Body)
	}
	return b
}

// visitor is a browser: it keeps cookies and sends what a browser sends,
// and does not follow redirects, so tests see them.
type visitor struct {
	t       *testing.T
	h       http.Handler
	tls     bool
	cookies map[string]*http.Cookie
	header  http.Header // sent with every request
}

func newVisitor(t *testing.T, h http.Handler) *visitor {
	return &visitor{t: t, h: h, cookies: map[string]*http.Cookie{}, header: http.Header{}}
}

type response struct {
	Status  int
	Header  http.Header
	Body    string
	Cookies []*http.Cookie
}

func (r *response) location() string { return r.Header.Get("Location") }

func (v *visitor) get(path string) *response { return v.do("GET", path, nil, nil) }

func (v *visitor) post(path string, form url.Values) *response { return v.do("POST", path, form, nil) }

func (v *visitor) do(method, path string, form url.Values, header http.Header) *response {
	v.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	r := httptest.NewRequestWithContext(v.t.Context(), method, path, body)
	if form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if v.tls {
		r.TLS = &tls.ConnectionState{HandshakeComplete: true}
	}
	for k, vs := range v.header {
		r.Header[k] = vs
	}
	for k, vs := range header {
		r.Header[k] = vs
	}
	for _, c := range v.cookies {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	v.h.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 {
			delete(v.cookies, c.Name)
		} else {
			v.cookies[c.Name] = &http.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	return &response{Status: res.StatusCode, Header: res.Header, Body: string(b), Cookies: res.Cookies()}
}

// mustGet fetches a page that must answer 200.
func (v *visitor) mustGet(path string) string {
	v.t.Helper()
	res := v.get(path)
	if res.Status != http.StatusOK {
		v.t.Fatalf("GET %s: status %d, want 200\n%s", path, res.Status, res.Body)
	}
	return res.Body
}

// tokenFields are the create form's fields for a usable shared dev token.
func tokenFields(name string) url.Values {
	return url.Values{"name": {name}, "key": {"main"}, "env": {"dev"}, "allow_server": {"on"}}
}

var tokenValue = regexp.MustCompile(`kve_(hb|pt)_(dev|stg|prd)_[0-9A-Za-z]{38}`)

// createToken creates a token through the form and returns its value.
func (v *visitor) createToken(slug string, form url.Values) string {
	v.t.Helper()
	res := v.post("/o/"+slug+"/tokens", form)
	if res.Status != http.StatusOK {
		v.t.Fatalf("create token: status %d\n%s", res.Status, res.Body)
	}
	value := tokenValue.FindString(res.Body)
	if value == "" {
		v.t.Fatalf("create token: no token value on the page")
	}
	return value
}

// tokenID finds a token's id from the list's copy form.
func tokenID(t *testing.T, page, name string) string {
	t.Helper()
	re := regexp.MustCompile(`/tokens/(tok_[0-9a-z]{26})/reveal" data-copy>\s*<button type="submit" aria-label="Copy token ` + regexp.QuoteMeta(name) + `"`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no token %q on the page", name)
	}
	return m[1]
}

func principal(t *testing.T, s *site, u managetest.User) manage.Principal {
	t.Helper()
	return s.Principal(t, u, "192.0.2.1")
}
