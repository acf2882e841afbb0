package kve

import (
	"crypto/rand"
	"hash/crc32"
	"time"
)

// TokenKind says whom a token serves: the whole team or one member.
type TokenKind string

// Token kinds (contract: DESIGN §2).
const (
	TokenShared   TokenKind = "hb" // shared by the team
	TokenPersonal TokenKind = "pt" // owned by one member, revoked when they leave
)

// Env is the environment a token is issued for.
type Env string

// Environments (contract: DESIGN §2).
const (
	EnvDev Env = "dev"
	EnvStg Env = "stg"
	EnvPrd Env = "prd"
)

// ParseEnv accepts dev, stg or prd.
func ParseEnv(s string) (Env, bool) {
	switch e := Env(s); e {
	case EnvDev, EnvStg, EnvPrd:
		return e, true
	}
	return "", false
}

// Token value format: kve_<kind>_<env>_<body>, body = 32 random base62
// characters + 6 base62 characters of CRC32 over everything before them.
const (
	tokenPrefix     = "kve_"
	tokenRandomLen  = 32
	tokenCheckLen   = 6
	tokenHeadLen    = len("kve_hb_dev_")
	TokenValueLen   = tokenHeadLen + tokenRandomLen + tokenCheckLen // 49
	base62Alphabet  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	tokenValueRegex = `kve_(hb|pt)_(dev|stg|prd)_[0-9A-Za-z]{38}`
)

// NewTokenValue returns a fresh token value of the given kind and environment,
// with 190 bits of crypto randomness.
func NewTokenValue(kind TokenKind, env Env) Secret {
	b := make([]byte, 0, TokenValueLen)
	b = append(b, tokenPrefix...)
	b = append(b, kind...)
	b = append(b, '_')
	b = append(b, env...)
	b = append(b, '_')
	b = appendRandomBase62(b, tokenRandomLen)
	b = appendChecksum(b)
	return Secret(b)
}

// ParseTokenValue checks the format and checksum of a presented token value
// and returns its kind and environment. It reads nothing but the string, so a
// mistyped or forged value is refused before any store lookup.
func ParseTokenValue(s string) (TokenKind, Env, bool) {
	if len(s) != TokenValueLen || s[:len(tokenPrefix)] != tokenPrefix || s[6] != '_' || s[10] != '_' {
		return "", "", false
	}
	kind := TokenKind(s[4:6])
	if kind != TokenShared && kind != TokenPersonal {
		return "", "", false
	}
	env, ok := ParseEnv(s[7:10])
	if !ok {
		return "", "", false
	}
	for i := tokenHeadLen; i < len(s); i++ {
		if !isBase62(s[i]) {
			return "", "", false
		}
	}
	var want [tokenCheckLen]byte
	putBase62(want[:], crc32.ChecksumIEEE([]byte(s[:TokenValueLen-tokenCheckLen])))
	if string(want[:]) != s[TokenValueLen-tokenCheckLen:] {
		return "", "", false
	}
	return kind, env, true
}

// LooksLikeToken reports whether s has the kve_ prefix of a proxy token, used
// to keep anything token-shaped from being forwarded upstream.
func LooksLikeToken(s string) bool { return len(s) >= 4 && s[:4] == tokenPrefix }

// TokenHint is the part of a token value kve may show in lists: its head and
// last four characters ("kve_hb_dev_…a1B2").
func TokenHint(v Secret) string {
	s := v.Reveal()
	if len(s) != TokenValueLen {
		return ""
	}
	return s[:tokenHeadLen] + "…" + s[len(s)-4:]
}

func appendChecksum(b []byte) []byte {
	var sum [tokenCheckLen]byte
	putBase62(sum[:], crc32.ChecksumIEEE(b))
	return append(b, sum[:]...)
}

// putBase62 writes v in base62, left-padded with '0', into dst.
func putBase62(dst []byte, v uint32) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = base62Alphabet[v%62]
		v /= 62
	}
}

// appendRandomBase62 draws n uniform base62 characters by rejection sampling
// (bytes ≥ 248 are dropped so that no character is more likely than another).
func appendRandomBase62(b []byte, n int) []byte {
	var buf [64]byte
	for n > 0 {
		rand.Read(buf[:]) // never returns an error (crypto/rand, Go ≥ 1.24)
		for _, c := range buf {
			if c >= 248 {
				continue
			}
			b = append(b, base62Alphabet[c%62])
			if n--; n == 0 {
				break
			}
		}
	}
	return b
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// Token is a sanitized token as kve stores it: never its value in the clear,
// but an HMAC for lookup and a sealed copy for reveals, plus its policy and a
// snapshot of the key it unlocks, so the proxy decides with one read.
type Token struct {
	ID      string    `json:"id"`
	OrgID   string    `json:"org_id"`
	Name    string    `json:"name"`
	Kind    TokenKind `json:"kind"`
	Env     Env       `json:"env"`
	OwnerID string    `json:"owner_id,omitempty"` // the member a personal token belongs to
	Hint    string    `json:"hint"`               // TokenHint of the value

	Hash   []byte `json:"-"` // HMAC-SHA256(pepper, value): the lookup key
	Sealed []byte `json:"-"` // AES-256-GCM(value), bound to ID

	Key    KeyRef `json:"key"`
	Policy Policy `json:"policy"`

	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	LastUsed  time.Time `json:"last_used_at,omitzero"`
	Version   int64     `json:"-"` // optimistic concurrency for read-modify-write

	// Alerts publishes this token's breach incidents to the organization's
	// alert subscriptions (on by default for prd tokens); incidents are
	// recorded either way. AutoSuspend lets kve suspend the token on a
	// breach that calls for it (a dev token from a third network, a
	// reported leak). A suspended token is refused like a revoked one until
	// an Owner or Admin resumes it; Suspension names the breach type.
	Alerts      bool      `json:"alerts"`
	AutoSuspend bool      `json:"auto_suspend"`
	SuspendedAt time.Time `json:"suspended_at,omitzero"`
	Suspension  string    `json:"suspension,omitempty"`

	Spend Spend `json:"-"` // filled by the proxy's lookup; not part of the token's own data
}

// Spend is what a token has cost on one UTC day, as counted by the store.
type Spend struct {
	Day   string // 2006-01-02
	Micro int64  // micro-USD
}

// Today returns the spend counted for the UTC day of now (0 if the counter is
// for another day).
func (s Spend) Today(now time.Time) int64 {
	if s.Day != now.UTC().Format(time.DateOnly) {
		return 0
	}
	return s.Micro
}

// Revoked reports whether the token was revoked.
func (t *Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Suspended reports whether kve or a manager suspended the token.
func (t *Token) Suspended() bool { return !t.SuspendedAt.IsZero() }

// Expired reports whether the token's expiry has passed at now.
func (t *Token) Expired(now time.Time) bool { return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) }

// KeyRef is the snapshot of a key that a token carries: everything the proxy
// needs to find the secret and talk to the upstream, nothing secret itself.
// Rotating a key updates the Version on every token that uses it, so the new
// value takes effect on the next request.
type KeyRef struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Upstream string `json:"upstream"`      // base URL; the provider's default when the key names none
	Secret   string `json:"-"`             // secret store name, kve/<org>/keys/<key-id>
	Version  string `json:"-"`             // secret version id
	Auth     Auth   `json:"auth,omitzero"` // injection for generic providers
}
