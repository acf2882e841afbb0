package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/store"
)

type alertsView struct {
	Slug   string
	Rows   []incidentRow
	Open   bool   // the list shows unacknowledged incidents only
	Token  string // the list shows one token's incidents
	Next   string
	First  string
	Filter string // the query the ack buttons return to

	Delivery bool // alert delivery is configured on this kve
	Subs     []subscriptionRow
	Form     *form // the subscribe form
}

// incidentRow is a breach incident. Origin, IP and user agent are what a
// client sent: recorded cleaned and cut (alerts.Sample), shown escaped by
// html/template, and cut shorter here for the table.
type incidentRow struct {
	ID                  string
	TokenID, TokenName  string
	Env                 kve.Env
	Type, Label         string
	Severity            string
	Detail              string
	FirstSeen, LastSeen time.Time
	Count               int64
	Origin, IP, Agent   string
	Request             string // the latest request id
	Suspended           bool   // kve suspended the token for it
	Acked               bool
	AckedBy             string
	AckedAt             time.Time
}

// sampleLen bounds a sample in the incident table.
const sampleLen = 120

// breachLabels name the breach types for people.
var breachLabels = map[string]string{
	"origin_not_allowed":   "Origin not allowed",
	"server_use":           "Server use not allowed",
	"ip_not_allowed":       "IP address not allowed",
	"revoked_token_used":   "Revoked token used",
	"expired_token_used":   "Expired token used",
	"suspended_token_used": "Suspended token used",
	"env_mismatch":         "Used outside its environment",
	"usage_spike":          "Usage spike",
	"leak_reported":        "Leak reported",
}

func incidentRowOf(inc store.Incident, p manage.Principal, names people) incidentRow {
	row := incidentRow{
		ID: inc.ID, TokenID: inc.TokenID, TokenName: inc.TokenName, Env: inc.Env, Type: inc.Type,
		Label: breachLabels[inc.Type], Severity: inc.Severity, Detail: kve.Truncate(inc.Detail, 300),
		FirstSeen: inc.FirstSeen, LastSeen: inc.LastSeen, Count: inc.Count,
		Origin: kve.Truncate(inc.Origin, sampleLen), IP: kve.Truncate(inc.IP, 64), Agent: kve.Truncate(inc.UserAgent, sampleLen),
		Suspended: inc.Suspended, Acked: !inc.AckedAt.IsZero(), AckedBy: names.who(inc.AckedBy, p), AckedAt: inc.AckedAt,
	}
	if row.Label == "" {
		row.Label = inc.Type
	}
	if n := len(inc.Requests); n > 0 {
		row.Request = inc.Requests[n-1]
	}
	return row
}

// subscriptionRow is an alert subscription: never the password a webhook
// URL may hold.
type subscriptionRow struct {
	ID, Protocol, Endpoint string
	Confirmed              bool
	CreatedBy              string
	CreatedAt              time.Time
}

func subscriptionRowOf(sub manage.AlertSubscription, p manage.Principal, names people) subscriptionRow {
	return subscriptionRow{ID: sub.ID, Protocol: sub.Protocol, Endpoint: manage.RedactEndpoint(sub.Endpoint),
		Confirmed: sub.Confirmed, CreatedBy: names.who(sub.CreatedBy, p), CreatedAt: sub.CreatedAt}
}

func (s *server) alerts(w http.ResponseWriter, r *http.Request) error {
	return s.alertsPage(w, r, http.StatusOK, newForm(url.Values{"kind": {"webhook"}}))
}

// alertsPage renders the breach alert log, newest activity first, and the
// organization's alert subscriptions with the form f to add one (Owner,
// Admin).
func (s *server) alertsPage(w http.ResponseWriter, r *http.Request, status int, f *form) error {
	q := r.URL.Query()
	p, m := principal(r), membership(r)
	v := alertsView{Slug: m.Org.Slug, Open: q.Get("open") != "", Token: strings.TrimSpace(q.Get("token")), Form: f}
	page, err := s.svc.Incidents(r.Context(), orgRef(r), p, manage.IncidentQuery{
		TokenID: v.Token, Open: v.Open, Cursor: q.Get("cursor"), Limit: pageSize,
	})
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	names := peopleOf(team)
	v.Rows = make([]incidentRow, 0, len(page.Items))
	for _, inc := range page.Items {
		v.Rows = append(v.Rows, incidentRowOf(inc, p, names))
	}
	list := url.Values{}
	if v.Open {
		list.Set("open", "1")
	}
	if v.Token != "" {
		list.Set("token", v.Token)
	}
	v.Filter = list.Encode()
	base := s.base + "/o/" + m.Org.Slug + "/alerts"
	if q.Get("cursor") != "" {
		v.First = withQuery(base, list)
	}
	if page.Next != "" {
		list.Set("cursor", page.Next)
		v.Next = withQuery(base, list)
	}
	subs, err := s.svc.AlertSubscriptions(r.Context(), orgRef(r), p)
	switch {
	case kve.CodeOf(err) == "alerts_not_configured":
		// Incidents are recorded all the same; only delivery is missing.
	case err != nil:
		return err
	default:
		v.Delivery = true
		for _, sub := range subs {
			v.Subs = append(v.Subs, subscriptionRowOf(sub, p, names))
		}
	}
	return s.render(w, r, status, "alerts", "Alerts", "Alerts", v)
}

// ackIncident acknowledges an incident (Owner, Admin) and returns to the
// list the button was on.
func (s *server) ackIncident(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	if _, err := s.svc.AckIncident(r.Context(), orgRef(r), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	back := backTo(f.Get("back"), "open", "token")
	back.Set("done", "incident_acked")
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/alerts?"+back.Encode())
}

// backTo reads the query a form says to return to, keeping only the
// parameters named: a form's hidden field must not become an open
// redirect or put arbitrary text on the next page.
func backTo(query string, keep ...string) url.Values {
	in, _ := url.ParseQuery(query)
	out := url.Values{}
	for _, k := range keep {
		if v := in.Get(k); v != "" {
			out.Set(k, v)
		}
	}
	return out
}

// subscribe adds a webhook or an email address to the organization's
// alert subscriptions (Owner, Admin). A webhook's protocol is its URL's
// scheme: manage allows http only where the deployment allows private
// networks.
func (s *server) subscribe(w http.ResponseWriter, r *http.Request) error {
	f, err := s.parseForm(w, r)
	if err != nil {
		return err
	}
	in := manage.SubscriptionInput{Protocol: "email", Endpoint: strings.TrimSpace(f.Get("endpoint"))}
	if f.Get("kind") != "email" {
		in.Protocol = "https"
		if scheme, _, ok := strings.Cut(in.Endpoint, "://"); ok && strings.EqualFold(scheme, "http") {
			in.Protocol = "http"
		}
	}
	if _, err := s.svc.Subscribe(r.Context(), orgRef(r), principal(r), in); err != nil {
		status, ferr := f.refuse(err)
		if ferr != nil {
			return ferr
		}
		return s.alertsPage(w, r, status, f)
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/alerts?done=subscribed#subscriptions")
}

type unsubscribeView struct {
	Slug string
	Sub  subscriptionRow
}

// unsubscribeForm asks to confirm the end of a subscription when the
// dialog's script is not running. It changes nothing.
func (s *server) unsubscribeForm(w http.ResponseWriter, r *http.Request) error {
	p, m := principal(r), membership(r)
	subs, err := s.svc.AlertSubscriptions(r.Context(), orgRef(r), p)
	if err != nil {
		return err
	}
	team, err := s.team(r)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if sub.ID == r.PathValue("id") {
			v := unsubscribeView{Slug: m.Org.Slug, Sub: subscriptionRowOf(sub, p, peopleOf(team))}
			return s.render(w, r, http.StatusOK, "unsubscribe", "Delete subscription", "Alerts", v)
		}
	}
	return kve.Errorf(kve.KindNotFound, "not_found", "There is no such subscription.")
}

func (s *server) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.Unsubscribe(r.Context(), orgRef(r), principal(r), r.PathValue("id")); err != nil {
		return err
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/alerts?done=unsubscribed#subscriptions")
}

// testAlert sends a test alert to every confirmed subscription (Owner,
// Admin).
func (s *server) testAlert(w http.ResponseWriter, r *http.Request) error {
	if err := s.svc.TestAlert(r.Context(), orgRef(r), principal(r)); err != nil {
		return err
	}
	return s.redirect(w, r, "/o/"+membership(r).Org.Slug+"/alerts?done=alert_tested#subscriptions")
}
