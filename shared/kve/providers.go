package kve

import (
	"net/url"
	"regexp"
	"strings"
)

// Family groups providers that share a wire format: where a client puts its
// credential, how the real key goes upstream, how usage is read.
type Family string

// Provider families (DESIGN §5).
const (
	FamilyOpenAI    Family = "openai"    // Authorization: Bearer; OpenAI JSON and SSE
	FamilyAnthropic Family = "anthropic" // x-api-key (keeps anthropic-version)
	FamilyGemini    Family = "gemini"    // x-goog-api-key (client may use ?key=)
	FamilyAzure     Family = "azure"     // api-key; OpenAI wire format
	FamilyGeneric   Family = "generic"   // any REST API; injection set on the key
)

// Provider says how to talk to an upstream.
type Provider struct {
	Name     string // route name: /<name>/… or <name>.<domain>
	Family   Family
	Upstream string // default base URL; "" when the key must name one
	EnvVar   string // prefix for .env lines: OPENAI → OPENAI_API_KEY, OPENAI_BASE_URL
	BasePath string // path the SDK's base URL ends in, after the route name ("/v1")
}

// Builtin providers. Any other valid name is a generic provider whose upstream
// and injection come from the key.
var builtin = map[string]Provider{
	"openai":       {"openai", FamilyOpenAI, "https://api.openai.com", "OPENAI", "/v1"},
	"mistral":      {"mistral", FamilyOpenAI, "https://api.mistral.ai", "MISTRAL", "/v1"},
	"groq":         {"groq", FamilyOpenAI, "https://api.groq.com/openai", "GROQ", "/v1"},
	"deepseek":     {"deepseek", FamilyOpenAI, "https://api.deepseek.com", "DEEPSEEK", "/v1"},
	"openrouter":   {"openrouter", FamilyOpenAI, "https://openrouter.ai/api", "OPENROUTER", "/v1"},
	"together":     {"together", FamilyOpenAI, "https://api.together.xyz", "TOGETHER", "/v1"},
	"anthropic":    {"anthropic", FamilyAnthropic, "https://api.anthropic.com", "ANTHROPIC", ""},
	"gemini":       {"gemini", FamilyGemini, "https://generativelanguage.googleapis.com", "GEMINI", ""},
	"azure-openai": {"azure-openai", FamilyAzure, "", "AZURE_OPENAI", ""},
}

// ReservedNames cannot name a provider: they are routes of kve itself. "o"
// (the dashboard's organization pages) is too short to be a provider name
// anyway; it is listed so that the rule holds if that ever changes.
var ReservedNames = []string{"api", "static", "login", "logout", "setup", "invite", "healthz", "account", "o"}

var providerName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}[a-z0-9]$`)

// LookupProvider returns the provider a route or key names: a builtin, or a
// generic provider for any other valid, unreserved name.
func LookupProvider(name string) (Provider, bool) {
	if p, ok := builtin[name]; ok {
		return p, true
	}
	if !ValidProviderName(name) {
		return Provider{}, false
	}
	return Provider{Name: name, Family: FamilyGeneric, EnvVar: envVarName(name)}, true
}

// IsBuiltinProvider reports whether name is one of kve's own providers.
func IsBuiltinProvider(name string) bool { _, ok := builtin[name]; return ok }

// BuiltinProviders lists the builtin provider names.
func BuiltinProviders() []string {
	names := make([]string, 0, len(builtin))
	for n := range builtin {
		names = append(names, n)
	}
	return names
}

// ValidProviderName reports whether name can name a provider in a route.
func ValidProviderName(name string) bool {
	if !providerName.MatchString(name) {
		return false
	}
	for _, r := range ReservedNames {
		if name == r {
			return false
		}
	}
	return true
}

func envVarName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// AcceptsCredential reports whether clients of this provider may send their
// token in the given place (a canonical header name, or "?key").
func (p Provider) AcceptsCredential(place string) bool {
	switch place {
	case "Authorization":
		return p.Family != FamilyAzure && p.Family != FamilyGemini
	case "X-Api-Key":
		return p.Family == FamilyAnthropic
	case "X-Goog-Api-Key", "?key":
		return p.Family == FamilyGemini
	case "Api-Key":
		return p.Family == FamilyAzure
	}
	return false
}

// Auth says how a generic provider's key is injected upstream. Builtin
// families ignore it: their injection is fixed by the family.
type Auth struct {
	Mode   AuthMode `json:"mode,omitempty"`
	Name   string   `json:"name,omitempty"`   // header or query parameter name
	Prefix string   `json:"prefix,omitempty"` // header value prefix, "Bearer " by default
}

// AuthMode selects where a generic key goes.
type AuthMode string

// Injection modes for generic providers.
const (
	AuthHeader AuthMode = "header" // Name: Prefix+key (default Authorization: Bearer key)
	AuthQuery  AuthMode = "query"  // ?Name=key
	AuthBasic  AuthMode = "basic"  // Authorization: Basic base64(key), key = "user:password"
)

var (
	headerName = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	queryName  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Validate checks an Auth for a generic key and fills its defaults.
func (a *Auth) Validate() error {
	switch a.Mode {
	case "", AuthHeader:
		a.Mode = AuthHeader
		if a.Name == "" {
			a.Name, a.Prefix = "Authorization", "Bearer "
		}
		if !headerName.MatchString(a.Name) || forbiddenAuthHeader(a.Name) {
			return Errorf(KindInvalid, "invalid_auth", "auth.name must be a header name kve may set")
		}
	case AuthQuery:
		if !queryName.MatchString(a.Name) {
			return Errorf(KindInvalid, "invalid_auth", "auth.name must name the query parameter, e.g. api_key")
		}
		a.Prefix = ""
	case AuthBasic:
		a.Name, a.Prefix = "", ""
	default:
		return Errorf(KindInvalid, "invalid_auth", "auth.mode must be header, query or basic")
	}
	if strings.ContainsAny(a.Prefix, "\r\n") || len(a.Prefix) > 32 {
		return Errorf(KindInvalid, "invalid_auth", "auth.prefix must be a short single line")
	}
	return nil
}

func forbiddenAuthHeader(name string) bool {
	switch strings.ToLower(name) {
	case "host", "connection", "content-length", "transfer-encoding", "te", "upgrade",
		"trailer", "keep-alive", "proxy-connection", "proxy-authorization", "cookie":
		return true
	}
	return false
}

// ValidateUpstream checks a key's upstream base URL: absolute https (http only
// when allowInsecure), a host, no userinfo, query or fragment. Whether the
// host may be private is decided at dial time, not here.
func ValidateUpstream(raw string, allowInsecure bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", Errorf(KindInvalid, "invalid_upstream", "upstream must be an absolute URL like https://api.example.com")
	}
	if u.Scheme != "https" && !(allowInsecure && u.Scheme == "http") {
		return "", Errorf(KindInvalid, "invalid_upstream", "upstream must use https")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", Errorf(KindInvalid, "invalid_upstream", "upstream may not hold userinfo, a query or a fragment")
	}
	// ".." anywhere, not only as a segment: some servers read "/..;/" as "/../".
	if strings.Contains(u.Path, "..") || strings.Contains(u.Path+"/", "/./") {
		return "", Errorf(KindInvalid, "invalid_upstream", "upstream path may not hold dot segments")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}
