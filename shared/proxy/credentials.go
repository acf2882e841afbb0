package proxy

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// credentialHeaders are every header a client of any supported SDK may put a
// key in. All of them are read to detect ambiguity and all are removed before
// forwarding, whatever the provider.
var credentialHeaders = [...]string{"Authorization", "X-Api-Key", "Api-Key", "X-Goog-Api-Key"}

// presented is the one credential a request carries.
type presented struct {
	value    string
	accepted bool // sent in a place the provider accepts
}

// credential finds the single credential of a request. Two different
// values anywhere (two headers, a header and ?key=, a repeated header) are
// ambiguous: kve never lets the first one win (SECURITY T03). The same value
// in two places is fine.
func credential(r *http.Request, p kve.Provider) (presented, *denial) {
	var c presented
	add := func(v, place string) *denial {
		if v == "" {
			return nil
		}
		if c.value != "" && v != c.value {
			return &denial{code: codeAmbiguous, reason: "ambiguous"}
		}
		c.value = v
		c.accepted = c.accepted || p.AcceptsCredential(place)
		return nil
	}
	for _, name := range credentialHeaders {
		for _, v := range r.Header[name] {
			if name == "Authorization" {
				v = bearer(v)
			}
			if d := add(strings.TrimSpace(v), name); d != nil {
				return c, d
			}
		}
	}
	if p.Family == kve.FamilyGemini && r.URL.RawQuery != "" {
		for _, v := range r.URL.Query()["key"] {
			if d := add(v, "?key"); d != nil {
				return c, d
			}
		}
	}
	switch {
	case c.value == "":
		return c, &denial{code: codeMissingToken, reason: "missing"}
	case !c.accepted:
		return c, &denial{code: codeMissingToken, reason: "misplaced",
			message: "No kve token was sent where " + p.Name + " clients send their API key."}
	}
	return c, nil
}

// bearer returns the credential of an Authorization header value: the
// Bearer token, or the whole value for any other scheme (so it still counts
// towards ambiguity and is never mistaken for a missing credential).
func bearer(v string) string {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return v[7:]
	}
	return v
}

// stripCredentials removes every client credential from an outbound request:
// the credential headers, cookies, Gemini's ?key=, and any query parameter
// that carries something token-shaped, so no kve token reaches an upstream.
func stripCredentials(out *http.Request, p kve.Provider) {
	for _, name := range credentialHeaders {
		out.Header.Del(name)
	}
	out.Header.Del("Cookie")
	out.Header.Del("Proxy-Authorization")
	q := out.URL.RawQuery
	if q == "" || !(strings.Contains(q, "key=") || strings.Contains(q, "kve_")) {
		return
	}
	values := out.URL.Query()
	for name, vs := range values {
		if name == "key" && p.Family == kve.FamilyGemini {
			delete(values, name)
			continue
		}
		for _, v := range vs {
			if kve.LooksLikeToken(v) {
				delete(values, name)
				break
			}
		}
	}
	out.URL.RawQuery = values.Encode()
}

// injectKey puts the real key where the provider expects it.
func injectKey(out *http.Request, ref *kve.KeyRef, family kve.Family, key kve.Secret) {
	v := key.Reveal()
	switch family {
	case kve.FamilyOpenAI:
		out.Header.Set("Authorization", "Bearer "+v)
	case kve.FamilyAnthropic:
		out.Header.Set("X-Api-Key", v)
	case kve.FamilyGemini:
		out.Header.Set("X-Goog-Api-Key", v)
	case kve.FamilyAzure:
		out.Header.Set("Api-Key", v)
	default:
		switch ref.Auth.Mode {
		case kve.AuthQuery:
			q := out.URL.Query()
			q.Set(ref.Auth.Name, v)
			out.URL.RawQuery = q.Encode()
		case kve.AuthBasic:
			user, pass, _ := strings.Cut(v, ":")
			out.SetBasicAuth(user, pass)
		default:
			name, prefix := ref.Auth.Name, ref.Auth.Prefix
			if name == "" {
				name, prefix = "Authorization", "Bearer "
			}
			out.Header.Set(name, prefix+v)
		}
	}
}

// queryEscapedKey is the form a key takes inside a URL, for redaction.
func queryEscapedKey(v string) string { return url.QueryEscape(v) }
