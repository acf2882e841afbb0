package console

import (
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// pageSize is how many tokens one page lists: enough to scan, few enough to
// render in a few milliseconds however many the organization has.
const pageSize = 50

type tokensView struct {
	Slug    string
	Rows    []tokenRow
	Env     string // the list's filter: "", dev, stg or prd
	Revoked bool   // the list includes revoked tokens
	Next    string // URL of the next page, "" on the last
	First   string // URL of the first page, "" on it

	EditError string // a refused edit of a token this page no longer lists

	Form      *form    // the create form
	Keys      []string // the organization's key names, for the create form
	Owner     bool     // may add keys
	Developer bool     // may create only personal dev tokens
}

var envs = []string{string(kve.EnvDev), string(kve.EnvStg), string(kve.EnvPrd)}

func (s *server) tokens(w http.ResponseWriter, r *http.Request) error {
	return s.tokensPage(w, r, http.StatusOK, newCreateForm(), rowEdit{})
}

func newCreateForm() *form { return newForm(url.Values{"env": {"dev"}, "allow_server": {"on"}}) }

// rowEdit is a refused edit of one token's rules, shown again in its row.
type rowEdit struct {
	id   string
	form *form
}

// tokensPage renders the token list with the create form f, which holds
// what was submitted and why it was refused after a failed create, and
// each editable row's form, edit's refused one in its row.
func (s *server) tokensPage(w http.ResponseWriter, r *http.Request, status int, f *form, edit rowEdit) error {
	q := r.URL.Query()
	p, m := principal(r), membership(r)
	v := tokensView{
		Slug: m.Org.Slug, Env: q.Get("env"), Revoked: q.Get("revoked") != "", Form: f,
		Owner: m.Role == kve.RoleOwner, Developer: m.Role == kve.RoleDeveloper,
	}
	if v.Env != "" && !slices.Contains(envs, v.Env) {
		v.Env = ""
	}
	page, err := s.svc.Tokens(r.Context(), orgRef(r), p, manage.TokenQuery{
		Env: v.Env, IncludeRevoked: v.Revoked, Cursor: q.Get("cursor"), Limit: pageSize,
	})
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	names := peopleOf(team)
	v.Rows = make([]tokenRow, 0, len(page.Items))
	list := url.Values{}
	if v.Env != "" {
		list.Set("env", v.Env)
	}
	if v.Revoked {
		list.Set("revoked", "1")
	}
	here := maps.Clone(list)
	if c := q.Get("cursor"); c != "" {
		here.Set("cursor", c)
	}
	shown := false
	for _, t := range page.Items {
		row := s.tokenRow(t, p, m.Role, names)
		// The edit form posts back with the list's query, so that a
		// refused edit renders the same page again, with its row open.
		row.EditAction = withQuery(s.base+"/o/"+m.Org.Slug+"/tokens/"+row.ID+"/policy", here)
		switch {
		case row.ID == edit.id:
			row.Edit, shown = edit.form, true
		case row.CanEdit:
			row.Edit = newForm(url.Values{
				"origins": {strings.Join(row.Origins, "\n")}, "ips": {strings.Join(row.IPs, "\n")},
				"rpm": {row.RPMValue}, "budget_usd": {row.BudgetValue},
			})
			if row.AllowServer {
				row.Edit.Values.Set("allow_server", "on")
			}
		}
		v.Rows = append(v.Rows, row)
	}
	if edit.id != "" && !shown {
		v.EditError = "The token's rules were not changed: " + edit.form.summary()
	}
	base := s.base + "/o/" + m.Org.Slug + "/tokens"
	if q.Get("cursor") != "" {
		v.First = withQuery(base, list)
	}
	if page.Next != "" {
		list.Set("cursor", page.Next)
		v.Next = withQuery(base, list)
	}
	if v.Keys, err = s.svc.KeyNames(r.Context(), orgRef(r), p); err != nil {
		return err
	}
	return s.render(w, r, status, "tokens", "Tokens", "Tokens", v)
}

func withQuery(path string, q url.Values) string {
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

type valueView struct {
	Slug    string
	Token   tokenRow
	Value   string // the token itself, shown on purpose
	Created bool
}

// createToken issues a token and shows its value. The value can be copied
// again later from the list; every copy is on record.
func (s *server) createToken(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	m := membership(r)
	in := manage.TokenInput{
		Name: f.Get("name"), Key: strings.TrimSpace(f.Get("key")), Env: f.Get("env"),
		Origins: lines(f.Get("origins")), AllowServer: f.Checked("allow_server"), IPs: lines(f.Get("ips")),
		Personal: f.Checked("personal"), ExpiresIn: f.Get("expires_in"),
	}
	if m.Role == kve.RoleDeveloper {
		in.Personal = true // the only kind a Developer may create; the form says so
	}
	var okRPM, okBudget bool
	in.RPM, okRPM = optionalInt(f, "rpm")
	in.BudgetUSD, okBudget = optionalFloat(f, "budget_usd")
	if !okRPM || !okBudget {
		return s.tokensPage(w, r, http.StatusUnprocessableEntity, f, rowEdit{})
	}
	it, err := s.svc.CreateToken(r.Context(), orgRef(r), principal(r), in)
	if err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.tokensPage(w, r, status, f, rowEdit{})
	}
	return s.showValue(w, r, it, true)
}

func (s *server) showValue(w http.ResponseWriter, r *http.Request, it manage.IssuedToken, created bool) error {
	m := membership(r)
	team, err := s.team(r)
	if err != nil {
		return err
	}
	v := valueView{
		Slug: m.Org.Slug, Token: s.tokenRow(it.Token, principal(r), m.Role, peopleOf(team)),
		Value: it.Value.Reveal(), Created: created,
	}
	title := "Token " + it.Token.Name
	return s.render(w, r, http.StatusOK, "token_value", title, "Tokens", v)
}

// wantsText reports whether the copy button's script asked for the bare
// value rather than a page.
func wantsText(r *http.Request) bool { return r.Header.Get("Accept") == "text/plain" }

func writeText(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, text)
}

// revealToken answers a token's value for the copy button (as text), or a
// page showing it when the script is not running. manage records the
// reveal before the value leaves.
func (s *server) revealToken(w http.ResponseWriter, r *http.Request) error {
	it, err := s.svc.RevealToken(r.Context(), orgRef(r), principal(r), r.PathValue("id"))
	if err != nil {
		return err
	}
	if wantsText(r) {
		writeText(w, it.Value.Reveal())
		return nil
	}
	return s.showValue(w, r, it, false)
}

// updateToken changes a token's origins, server use, IP ranges and limits
// (Owner, Admin). Empty limits mean unlimited.
func (s *server) updateToken(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	refused := func(status int) error {
		return s.tokensPage(w, r, status, newCreateForm(), rowEdit{id: id, form: f})
	}
	origins, ips := lines(f.Get("origins")), lines(f.Get("ips"))
	server := f.Checked("allow_server")
	rpm, okRPM := optionalInt(f, "rpm")
	budget, okBudget := optionalFloat(f, "budget_usd")
	if !okRPM || !okBudget {
		return refused(http.StatusUnprocessableEntity)
	}
	if rpm == nil {
		rpm = new(int)
	}
	if budget == nil {
		budget = new(float64)
	}
	patch := manage.TokenPatch{Origins: &origins, AllowServer: &server, IPs: &ips, RPM: rpm, BudgetUSD: budget}
	if _, err := s.svc.UpdateToken(r.Context(), orgRef(r), principal(r), id, patch); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return refused(status)
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/tokens?done=token_updated")
}

type revokeView struct {
	Slug  string
	Token tokenRow
}

// revokeForm is the confirmation step when the dialog's script is not
// running: a page that changes nothing, naming the token, with the button
// that revokes it. It is not found for a token the caller may not see, and
// forbidden for one they may not revoke.
func (s *server) revokeForm(w http.ResponseWriter, r *http.Request) error {
	p, m := principal(r), membership(r)
	t, err := s.svc.Token(r.Context(), orgRef(r), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	row := s.tokenRow(t, p, m.Role, peopleOf(team))
	switch {
	case row.Revoked:
		return kve.Errorf(kve.KindGone, "token_revoked", "The token %s is already revoked.", t.Name)
	case !row.CanRevoke:
		return kve.Errorf(kve.KindForbidden, "forbidden", "Your role in this organization does not allow revoking this token.")
	}
	return s.render(w, r, http.StatusOK, "token_revoke", "Revoke token "+t.Name, "Tokens", revokeView{Slug: m.Org.Slug, Token: row})
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.svc.RevokeToken(r.Context(), orgRef(r), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/tokens?done=token_revoked")
}

type envView struct {
	Slug, Env, Text string
}

// env shows the .env lines of an environment's shared tokens, one per
// provider, as the env endpoint answers them; manage records each token in
// them as a reveal before it answers.
func (s *server) env(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	env := f.Get("env")
	text, err := s.svc.Env(r.Context(), orgRef(r), principal(r), env)
	if err != nil {
		return err
	}
	if wantsText(r) {
		writeText(w, string(text))
		return nil
	}
	slug := membership(r).Org.Slug
	return s.render(w, r, http.StatusOK, "env", ".env for "+env, "Tokens", envView{Slug: slug, Env: env, Text: string(text)})
}

type tokenView struct {
	Slug      string
	Token     tokenRow
	Limits    []string // beyond the policy: tokens per minute, a monthly budget
	Manager   bool     // may change its alert settings and see its incidents
	Alerting  *form
	Incidents []incidentRow
	More      bool   // it has more incidents than the page shows
	Usage     string // its usage page, when the caller may see it
}

// tokenIncidents is how many of a token's incidents its page shows; the
// alerts page lists them all.
const tokenIncidents = 10

// token shows one token: its rules and limits, a suspension, and for
// Owners and Admins its breach alert settings and latest incidents. It is
// not found for a token the caller may not see.
func (s *server) token(w http.ResponseWriter, r *http.Request) error {
	p, m := principal(r), membership(r)
	t, err := s.svc.Token(r.Context(), orgRef(r), p, r.PathValue("id"))
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	names := peopleOf(team)
	v := tokenView{Slug: m.Org.Slug, Token: s.tokenRow(t, p, m.Role, names), Manager: managerRole(m.Role)}
	l, err := s.svc.TokenLimits(r.Context(), orgRef(r), p, t.ID)
	if err != nil {
		return err
	}
	if l.TPM > 0 {
		v.Limits = append(v.Limits, count(int64(l.TPM))+" tokens / min")
	}
	if l.MonthBudgetMicro > 0 {
		v.Limits = append(v.Limits, "$"+dollars(l.MonthBudgetMicro)+" / month")
	}
	if v.Manager || t.Kind == kve.TokenPersonal && t.OwnerID == p.UserID {
		v.Usage = s.base + "/o/" + m.Org.Slug + "/usage?" + url.Values{"token": {t.ID}}.Encode()
	}
	if v.Manager {
		v.Alerting = newForm(url.Values{})
		if t.Alerts {
			v.Alerting.Values.Set("alerts", "on")
		}
		if t.AutoSuspend {
			v.Alerting.Values.Set("auto_suspend", "on")
		}
		page, err := s.svc.Incidents(r.Context(), orgRef(r), p, manage.IncidentQuery{TokenID: t.ID, Limit: tokenIncidents})
		if err != nil {
			return err
		}
		for _, inc := range page.Items {
			v.Incidents = append(v.Incidents, incidentRowOf(inc, p, names))
		}
		v.More = page.Next != ""
	}
	return s.render(w, r, http.StatusOK, "token", "Token "+t.Name, "Tokens", v)
}

// setAlerting turns a token's breach alerts and its automatic suspension
// on or off (Owner, Admin).
func (s *server) setAlerting(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	alerts, suspend := f.Checked("alerts"), f.Checked("auto_suspend")
	id := r.PathValue("id")
	patch := manage.TokenPatch{Alerts: &alerts, AutoSuspend: &suspend}
	if _, err := s.svc.UpdateToken(r.Context(), orgRef(r), principal(r), id, patch); err != nil {
		return err
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/tokens/"+id+"?done=token_alerting")
}

// setSuspended returns the handler that suspends a token (on) or resumes
// it (Owner, Admin): a suspended token is refused like a revoked one, but
// can come back.
func (s *server) setSuspended(on bool) handlerFunc {
	done := map[bool]string{true: "token_suspended", false: "token_resumed"}[on]
	return func(w http.ResponseWriter, r *http.Request) error {
		id := r.PathValue("id")
		if _, err := s.svc.UpdateToken(r.Context(), orgRef(r), principal(r), id, manage.TokenPatch{Suspended: &on}); err != nil {
			return err
		}
		return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/tokens/"+id+"?done="+done)
	}
}
