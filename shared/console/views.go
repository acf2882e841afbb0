package console

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// Pages are rendered from views built field by field from kve's types, so a
// field added to a stored type (a hash, a sealed value) never reaches a
// template by accident.

// tokenRow is a token as the tokens page lists it.
type tokenRow struct {
	ID, Name, Hint string
	Env            kve.Env
	Shared         bool
	Owner          string // whose personal token: "you" or a user id
	Key, Provider  string
	Origins        []string
	AllowServer    bool
	IPs            []string
	Paths          []string
	RPM, Budget    string // "60 / min", "$2.00 / day", "unlimited"
	RPMValue       string // the limits as the edit form shows them
	BudgetValue    string
	CreatedBy      string
	CreatedAt      time.Time
	ExpiresAt      time.Time
	LastUsed       time.Time
	Expired        bool
	Revoked        bool
	Suspended      bool   // refused until a manager resumes it
	Suspension     string // why: a breach type, or "manual"
	SuspendedAt    time.Time
	Alerts         bool // its incidents go to the alert subscriptions
	AutoSuspend    bool // kve may suspend it on a breach
	CanRevoke      bool
	CanEdit        bool
	Edit           *form // the edit form of its rules, when CanEdit
	EditAction     string
}

func (s *server) tokenRow(t kve.Token, p manage.Principal, role kve.Role, names people) tokenRow {
	row := tokenRow{
		ID: t.ID, Name: t.Name, Hint: t.Hint, Env: t.Env, Shared: t.Kind == kve.TokenShared,
		Key: t.Key.Name, Provider: t.Key.Provider,
		Origins: make([]string, 0, len(t.Policy.Origins)), AllowServer: t.Policy.AllowServer,
		IPs: make([]string, 0, len(t.Policy.IPs)), Paths: make([]string, 0, len(t.Policy.Paths)),
		RPM: "unlimited", Budget: "unlimited",
		CreatedBy: names.who(t.CreatedBy, p), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsed: t.LastUsed,
		Expired: t.Expired(s.now()), Revoked: t.Revoked(),
		Suspended: t.Suspended(), Suspension: t.Suspension, SuspendedAt: t.SuspendedAt,
		Alerts: t.Alerts, AutoSuspend: t.AutoSuspend,
	}
	if !row.Shared {
		row.Owner = names.who(t.OwnerID, p)
	}
	for _, o := range t.Policy.Origins {
		row.Origins = append(row.Origins, o.String())
	}
	for _, n := range t.Policy.IPs {
		row.IPs = append(row.IPs, n.String())
	}
	for _, r := range t.Policy.Paths {
		row.Paths = append(row.Paths, r.String())
	}
	if t.Policy.RPM > 0 {
		row.RPM = strconv.Itoa(t.Policy.RPM) + " / min"
		row.RPMValue = strconv.Itoa(t.Policy.RPM)
	}
	if t.Policy.BudgetMicro > 0 {
		row.BudgetValue = dollars(t.Policy.BudgetMicro)
		row.Budget = "$" + row.BudgetValue + " / day"
	}
	manager := managerRole(role)
	mine := t.Kind == kve.TokenPersonal && t.OwnerID == p.UserID && t.Env == kve.EnvDev
	row.CanRevoke = !row.Revoked && (manager || mine)
	row.CanEdit = !row.Revoked && manager
	return row
}

// dollars formats micro-USD as dollars with cents, more digits only when
// the amount has them.
func dollars(micro int64) string {
	s := fmt.Sprintf("%d.%06d", micro/1e6, micro%1e6)
	s = strings.TrimRight(s, "0")
	if i := strings.IndexByte(s, '.'); len(s)-i < 3 {
		s += strings.Repeat("0", 3-(len(s)-i))
	}
	return s
}

// people are the names of an organization's members, by user id.
type people map[string]string

func peopleOf(ms []kve.Member) people {
	names := make(people, len(ms))
	for _, m := range ms {
		names[m.UserID] = m.Name
	}
	return names
}

// who names a user for a page: "you" for the caller, a member by name, and
// someone who has left (or a system actor) as a former member.
func (names people) who(userID string, p manage.Principal) string {
	switch userID {
	case "":
		return ""
	case p.UserID:
		return "you"
	}
	if name, ok := names[userID]; ok {
		return name
	}
	return "a former member"
}

// keyRow is a key's reference: never its value.
type keyRow struct {
	Name, Provider, Upstream string
	Auth                     string // how a generic provider's key is injected
	Last4, Fingerprint       string
	CreatedBy                string
	CreatedAt, RotatedAt     time.Time
}

func keyRowOf(k kve.Key, p manage.Principal, names people) keyRow {
	row := keyRow{
		Name: k.Name, Provider: k.Provider, Upstream: k.Upstream, Last4: k.Last4, Fingerprint: k.Fingerprint,
		CreatedBy: names.who(k.CreatedBy, p), CreatedAt: k.CreatedAt, RotatedAt: k.RotatedAt,
	}
	switch k.Auth.Mode {
	case kve.AuthHeader:
		row.Auth = "header " + k.Auth.Name
	case kve.AuthQuery:
		row.Auth = "query ?" + k.Auth.Name + "="
	case kve.AuthBasic:
		row.Auth = "HTTP basic"
	}
	return row
}

// eventRow is an audit entry. Detail values come from users and from
// breach events (Origin, User-Agent): html/template escapes them, and long
// ones are cut.
type eventRow struct {
	At                 time.Time
	ActorID, Actor     string
	Action, Target, IP string
	Detail             []detail
}

type detail struct{ Key, Value string }

func eventRowOf(e kve.Event) eventRow {
	row := eventRow{At: e.At, ActorID: e.ActorID, Actor: e.Actor, Action: e.Action, Target: e.Target, IP: e.IP}
	for k, v := range e.Detail {
		row.Detail = append(row.Detail, detail{Key: kve.Truncate(k, 64), Value: kve.Truncate(v, 200)})
	}
	slices.SortFunc(row.Detail, func(a, b detail) int { return strings.Compare(a.Key, b.Key) })
	return row
}

// memberRow is a member as the members page lists them.
type memberRow struct {
	UserID, Name, Email string
	Role                kve.Role
	JoinedAt            time.Time
	You                 bool
	CanRemove           bool
}

// inviteRow is a pending invite: never its code, which kve does not keep.
type inviteRow struct {
	ID, Email            string
	Role                 kve.Role
	InvitedBy            string
	CreatedAt, ExpiresAt time.Time
	CanManage            bool // the caller's role is at least the invite's
}
