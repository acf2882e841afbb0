package alerts

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// Notification is one message for an organization's subscriptions, with
// the attributes their SNS filter policies select on.
type Notification struct {
	OrgID    string
	Type     Type
	Env      kve.Env // "" for a test alert
	Severity string
	Subject  string // printable ASCII, at most 100 characters (SNS's limit)
	Message  []byte // the Alert, as JSON
}

// Attributes returns the message attributes: org, type, environment and
// severity, all strings.
func (n *Notification) Attributes() map[string]string {
	env := string(n.Env)
	if env == "" {
		env = "none"
	}
	return map[string]string{"org": n.OrgID, "type": string(n.Type), "environment": env, "severity": n.Severity}
}

// Alert is the JSON message of a notification: what a webhook receives as
// the SNS message's Message, and an email subscriber as its text. It never
// holds a token value or a key: the token is named by id and name.
type Alert struct {
	Version    int          `json:"version"` // 1
	Kind       string       `json:"kind"`    // kve.breach_alert, or kve.test_alert
	IncidentID string       `json:"incident_id,omitempty"`
	Org        AlertOrg     `json:"org"`
	Type       Type         `json:"type"`
	Severity   string       `json:"severity"`
	Env        kve.Env      `json:"environment,omitempty"`
	Token      *AlertToken  `json:"token,omitempty"`
	Count      int64        `json:"count,omitempty"`
	FirstSeen  time.Time    `json:"first_seen,omitzero"`
	LastSeen   time.Time    `json:"last_seen,omitzero"`
	Sample     *AlertSample `json:"sample,omitempty"`
	RequestIDs []string     `json:"request_ids,omitempty"`
	Detail     string       `json:"detail"`
	Suspended  bool         `json:"token_suspended,omitempty"`
	// DashboardURL opens the incident in the dashboard.
	DashboardURL string `json:"dashboard_url"`
}

// AlertOrg names the organization.
type AlertOrg struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
}

// AlertToken names the token: never its value.
type AlertToken struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// AlertSample is the latest offending request, as seen by kve.
type AlertSample struct {
	Origin    string `json:"origin,omitempty"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
}

// Alert kinds.
const (
	KindBreach = "kve.breach_alert"
	KindTest   = "kve.test_alert"
)

// NewNotification builds the notification of an incident. publicURL is the
// dashboard's base URL, for the link.
func NewNotification(inc *store.Incident, org kve.Org, publicURL string) (Notification, error) {
	a := Alert{
		Version: 1, Kind: KindBreach, IncidentID: inc.ID, Org: AlertOrg{ID: org.ID, Slug: org.Slug},
		Type: Type(inc.Type), Severity: inc.Severity, Env: inc.Env,
		Token: &AlertToken{ID: inc.TokenID, Name: inc.TokenName}, Count: inc.Count,
		FirstSeen: inc.FirstSeen, LastSeen: inc.LastSeen,
		Sample:     &AlertSample{Origin: inc.Origin, IP: inc.IP, UserAgent: inc.UserAgent},
		RequestIDs: inc.Requests, Detail: inc.Detail, Suspended: inc.Suspended,
		DashboardURL: dashboardURL(publicURL, org.Slug, url.Values{"incident": {inc.ID}}),
	}
	subject := fmt.Sprintf("kve %s alert: %s on token %s (%s)", a.Severity, a.Type, inc.TokenName, a.Env)
	if a.Suspended {
		subject = fmt.Sprintf("kve %s alert: token %s (%s) suspended: %s", a.Severity, inc.TokenName, a.Env, a.Type)
	}
	return notification(&a, subject)
}

// NewTestNotification builds the test alert of an organization.
func NewTestNotification(org kve.Org, publicURL string, at time.Time) (Notification, error) {
	a := Alert{
		Version: 1, Kind: KindTest, Org: AlertOrg{ID: org.ID, Slug: org.Slug}, Type: TestAlert,
		Severity: TestAlert.Severity(), LastSeen: at.UTC(),
		Detail:       "A test alert from kve: this subscription receives the organization's breach alerts.",
		DashboardURL: dashboardURL(publicURL, org.Slug, nil),
	}
	return notification(&a, "kve test alert for "+org.Slug)
}

func notification(a *Alert, subject string) (Notification, error) {
	// Indented: SNS mails an email subscriber the message as it is.
	msg, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return Notification{}, fmt.Errorf("encode alert: %w", err)
	}
	return Notification{OrgID: a.Org.ID, Type: a.Type, Env: a.Env, Severity: a.Severity,
		Subject: Subject(subject), Message: msg}, nil
}

// dashboardURL links to the organization's alerts page.
func dashboardURL(publicURL, slug string, q url.Values) string {
	u := strings.TrimRight(publicURL, "/") + "/o/" + url.PathEscape(slug) + "/alerts"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// Subject makes s an SNS subject: printable ASCII (anything else becomes
// '?'), no line breaks, at most 100 characters.
func Subject(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			b.WriteByte(' ')
		case r < 0x20 || r >= 0x7f:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	out := strings.TrimSpace(b.String())
	if len(out) > 100 {
		out = out[:97] + "..."
	}
	return out
}

// maxSample bounds a sample (origin, user agent) in bytes, before "…".
const maxSample = 200

// Sample makes attacker-controlled text (an Origin, a User-Agent) safe to
// record and show (SECURITY T37): invalid UTF-8 bytes, control and
// formatting characters (line breaks, bidirectional overrides, zero-width
// characters) and backslashes become visible escapes (\x00, \u202e, \\),
// so nothing can break a line, reorder text or pass for another value;
// the result is cut to maxSample bytes. HTML and JSON escaping are the
// renderer's.
func Sample(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() <= maxSample; {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\':
			b.WriteString(`\\`)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return kve.Truncate(b.String(), maxSample)
}

// IncidentID is the id of the incident of (org, token, type): derived, so
// every writer in every execution environment names the same row.
func IncidentID(orgID, tokenID string, t Type) string {
	sum := sha256.Sum256([]byte(orgID + "\x00" + tokenID + "\x00" + string(t)))
	const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	b := []byte("inc_")
	for _, c := range sum[:16] {
		b = append(b, alphabet[c&31])
	}
	return string(b)
}
