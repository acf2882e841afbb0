package kve

import (
	"regexp"
	"strings"
	"time"
)

// Org is an organization: a team that owns keys, tokens and members.
type Org struct {
	ID        string    `json:"id"`
	Slug      string    `json:"slug"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
}

// Role is a member's role in one organization (DESIGN §8).
type Role string

// Roles, from most to least powerful.
const (
	RoleOwner     Role = "owner"
	RoleAdmin     Role = "admin"
	RoleDeveloper Role = "developer"
)

// ParseRole accepts owner, admin or developer.
func ParseRole(s string) (Role, bool) {
	switch r := Role(s); r {
	case RoleOwner, RoleAdmin, RoleDeveloper:
		return r, true
	}
	return "", false
}

func (r Role) rank() int {
	switch r {
	case RoleOwner:
		return 3
	case RoleAdmin:
		return 2
	case RoleDeveloper:
		return 1
	}
	return 0
}

// AtLeast reports whether r is o or more powerful.
func (r Role) AtLeast(o Role) bool { return r.rank() >= o.rank() && r.rank() > 0 }

// User is a person who can sign in.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"` // canonical: trimmed, lower case
	Name      string    `json:"name"`
	Password  []byte    `json:"-"` // argon2id hash in PHC form
	CreatedAt time.Time `json:"created_at"`
}

// Member is a user's place in an organization.
type Member struct {
	OrgID    string    `json:"org_id"`
	UserID   string    `json:"user_id"`
	Email    string    `json:"email"`
	Name     string    `json:"name"`
	Role     Role      `json:"role"`
	JoinedAt time.Time `json:"joined_at"`
}

// Membership is one organization a user belongs to, with their role there.
type Membership struct {
	Org  Org  `json:"org"`
	Role Role `json:"role"`
}

// Session is a management credential: a dashboard login or a kvm_ API token.
// Only its hash is stored.
type Session struct {
	ID        string      `json:"id"`
	UserID    string      `json:"user_id"`
	Kind      SessionKind `json:"kind"`
	Name      string      `json:"name,omitempty"` // label of an API token
	Hash      []byte      `json:"-"`
	CreatedAt time.Time   `json:"created_at"`
	ExpiresAt time.Time   `json:"expires_at,omitzero"` // absolute limit
	LastSeen  time.Time   `json:"last_seen_at,omitzero"`
	OrgID     string      `json:"org_id,omitempty"` // an API token limited to one organization
}

// SessionKind tells a browser session from an API token.
type SessionKind string

// Session kinds.
const (
	SessionBrowser SessionKind = "browser"
	SessionAPI     SessionKind = "api"
)

// Management API tokens: kvm_ + 43 base62 characters (256 bits).
const apiTokenPrefix = "kvm_"

// NewAPIToken returns a fresh management API token value.
func NewAPIToken() Secret {
	b := append(make([]byte, 0, 48), apiTokenPrefix...)
	return Secret(appendRandomBase62(b, 43))
}

// LooksLikeAPIToken reports whether s has the shape of a kvm_ token.
func LooksLikeAPIToken(s string) bool {
	if len(s) != len(apiTokenPrefix)+43 || !strings.HasPrefix(s, apiTokenPrefix) {
		return false
	}
	for i := len(apiTokenPrefix); i < len(s); i++ {
		if !isBase62(s[i]) {
			return false
		}
	}
	return true
}

// NewSessionID returns a fresh 256-bit browser session value.
func NewSessionID() Secret { return Secret(appendRandomBase62(nil, 43)) }

var slugChars = regexp.MustCompile(`[^a-z0-9]+`)

// Slugify derives a URL slug from an organization name.
func Slugify(name string) string {
	s := strings.Trim(slugChars.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if len(s) > 40 {
		s = strings.TrimRight(s[:40], "-")
	}
	if s == "" {
		s = "org"
	}
	return s
}

// CanonicalEmail trims and lower-cases an address; it does not validate it.
func CanonicalEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
