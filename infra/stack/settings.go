package stack

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Settings is what a team chooses for its deployment. They come from the
// "context" of cdk.json or from `cdk … -c key=value`; the context key of each
// field is in its comment.
type Settings struct {
	// Name names the deployment (name): the stack, the table, the key alias
	// and kve's own secrets (<name>/system/…) carry it. Default "kve".
	Name string
	// Regions (regions, comma-separated) pins the deployment to regions; the
	// first is the primary, which owns the global table, the server secrets
	// and the alert topic. Empty means one environment-agnostic stack that
	// deploys wherever the CLI's credentials point.
	Regions []string
	// Domain (domain) turns on host-form routing: <provider>.<domain>,
	// api.<domain> and console.<domain>.
	Domain string
	// HostedZoneID and HostedZoneName (hostedZoneId, hostedZoneName) name the
	// Route 53 zone that holds Domain; the name defaults to Domain. With a
	// zone the stack writes the DNS records and, without CertificateARNs,
	// creates the certificate with DNS validation.
	HostedZoneID   string
	HostedZoneName string
	// CertificateARNs (certificateArn, comma-separated) are ACM certificates
	// for *.<Domain>, one per region: API Gateway needs one in the region of
	// each regional custom domain.
	CertificateARNs []string
	// AlertEmail (alertEmail) is subscribed to the breach alert topic and to
	// every region's alarm topic.
	AlertEmail string
	// AllowPrivateUpstreams (allowPrivateUpstreams, comma-separated CIDRs)
	// becomes KVE_ALLOW_PRIVATE_UPSTREAMS.
	AllowPrivateUpstreams []string
	// LogRetentionDays (logRetentionDays) is how long function and access
	// logs are kept; one of CloudWatch Logs' fixed periods. Default 30.
	LogRetentionDays int
	// WAF (waf) puts a WAF web ACL with a per-IP rate-based rule in front of
	// every API; WAFRateLimit (wafRateLimit) is that rule's limit in requests
	// per IP per 5 minutes.
	WAF          bool
	WAFRateLimit int
	// MailFrom (mailFrom) is the SES identity invite mail is sent from; the
	// api and console may send only as it. Empty: no mail, invites return
	// their accept URL instead.
	MailFrom string
	// KeyCacheTTL, MaxBodyBytes and LogLevel (keyCacheTtl, maxBodyBytes,
	// logLevel) become KVE_KEY_CACHE_TTL, KVE_MAX_BODY_BYTES and
	// KVE_LOG_LEVEL when set.
	KeyCacheTTL  string
	MaxBodyBytes string
	LogLevel     string
	// SecretScanningKeys (secretScanningKeys) is the JSON GitHub publishes
	// for its secret-scanning partner program ({"public_keys":[…]}), for
	// the leak-report endpoint; LeakSuspendEnvs (leakSuspendEnvs) the
	// environments a reported leak suspends ("stg,prd" by default, or
	// "none"). They become KVE_SECRET_SCANNING_KEYS and KVE_LEAK_SUSPEND_ENVS.
	SecretScanningKeys string
	LeakSuspendEnvs    string
	// AssetDir (assetDir) is where `make build` wrote <function>/bootstrap.
	// Default "infra/assets", relative to the repository root where the CDK
	// CLI runs the app.
	AssetDir string
}

// Defaults for settings left unset.
const (
	DefaultName             = "kve"
	DefaultLogRetentionDays = 30
	DefaultAssetDir         = "infra/assets"
	// DefaultWAFRateLimit allows 20 requests per second per client IP,
	// sustained over the 5-minute window. It is a flood guard, not the
	// per-token limit (the proxy enforces that): a team's backend behind one
	// NAT address must not trip it in normal use.
	DefaultWAFRateLimit = 6000
)

// retentionDays are the periods CloudWatch Logs accepts.
var retentionDays = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}

var (
	namePattern   = regexp.MustCompile(`^[a-z][a-z0-9-]{0,20}[a-z0-9]$`)
	regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]$`)
	zoneIDPattern = regexp.MustCompile(`^Z[A-Z0-9]{1,31}$`)
	domainPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
)

// ParseSettings reads settings through lookup, which returns a context
// value: a string when it came from -c, or whatever JSON type cdk.json
// holds. It fails on any value the stack or its functions would refuse.
func ParseSettings(lookup func(key string) any) (Settings, error) {
	r := reader{lookup: lookup}
	s := Settings{
		Name:                  r.str("name", DefaultName),
		Regions:               r.list("regions"),
		Domain:                strings.ToLower(r.str("domain", "")),
		HostedZoneID:          r.str("hostedZoneId", ""),
		HostedZoneName:        strings.ToLower(r.str("hostedZoneName", "")),
		CertificateARNs:       r.list("certificateArn"),
		AlertEmail:            r.str("alertEmail", ""),
		AllowPrivateUpstreams: r.list("allowPrivateUpstreams"),
		LogRetentionDays:      r.integer("logRetentionDays", DefaultLogRetentionDays),
		WAF:                   r.boolean("waf"),
		WAFRateLimit:          r.integer("wafRateLimit", DefaultWAFRateLimit),
		MailFrom:              r.str("mailFrom", ""),
		KeyCacheTTL:           r.str("keyCacheTtl", ""),
		MaxBodyBytes:          r.str("maxBodyBytes", ""),
		LogLevel:              r.str("logLevel", ""),
		SecretScanningKeys:    r.str("secretScanningKeys", ""),
		LeakSuspendEnvs:       r.str("leakSuspendEnvs", ""),
		AssetDir:              r.str("assetDir", DefaultAssetDir),
	}
	if s.HostedZoneName == "" {
		s.HostedZoneName = s.Domain
	}
	errs := append(r.errs, s.Validate())
	if err := errors.Join(errs...); err != nil {
		return Settings{}, fmt.Errorf("read settings: %w", err)
	}
	return s, nil
}

// Validate reports every setting that cannot work. The environment values
// the functions parse themselves (cache TTL, body cap, CIDRs) are checked
// again, exactly as the functions do, when the stack sets them.
func (s Settings) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !namePattern.MatchString(s.Name) {
		bad("name %q: want 2 to 22 lower-case letters, digits and dashes, starting with a letter", s.Name)
	}
	for i, r := range s.Regions {
		if !regionPattern.MatchString(r) {
			bad("regions: %q is not a region name like eu-west-1", r)
		}
		if slices.Contains(s.Regions[:i], r) {
			bad("regions: %s is listed twice", r)
		}
	}
	if s.Domain != "" && !domainPattern.MatchString(s.Domain) {
		bad("domain %q is not a DNS name like kve.example.com", s.Domain)
	}
	if s.HostedZoneID != "" {
		switch {
		case s.Domain == "":
			bad("hostedZoneId needs domain")
		case !zoneIDPattern.MatchString(s.HostedZoneID):
			bad("hostedZoneId %q is not a Route 53 zone id like Z0123456789ABCDEFGHIJ", s.HostedZoneID)
		case s.Domain != s.HostedZoneName && !strings.HasSuffix(s.Domain, "."+s.HostedZoneName):
			bad("domain %s is not inside hosted zone %s", s.Domain, s.HostedZoneName)
		}
	}
	if len(s.CertificateARNs) > 0 && s.Domain == "" {
		bad("certificateArn needs domain")
	}
	if s.Domain != "" && s.HostedZoneID == "" && len(s.CertificateARNs) == 0 {
		bad("domain %s needs certificateArn, or hostedZoneId to create a certificate", s.Domain)
	}
	for _, arn := range s.CertificateARNs {
		region, ok := certificateRegion(arn)
		switch {
		case !ok:
			bad("certificateArn %q is not an ACM certificate ARN", arn)
		case len(s.Regions) > 0 && !slices.Contains(s.Regions, region):
			bad("certificateArn %s is in %s, which is not one of the regions", arn, region)
		}
	}
	if s.Domain != "" && s.HostedZoneID == "" && len(s.CertificateARNs) > 0 {
		if len(s.Regions) == 0 && len(s.CertificateARNs) > 1 {
			bad("certificateArn lists %d certificates but regions is empty: set regions", len(s.CertificateARNs))
		}
		for _, r := range s.Regions {
			if _, ok := s.certificateFor(r); !ok {
				bad("certificateArn has no certificate in %s (ACM certificates are regional)", r)
			}
		}
	}
	if s.AlertEmail != "" {
		if a, err := mail.ParseAddress(s.AlertEmail); err != nil || a.Address != s.AlertEmail {
			bad("alertEmail %q is not a plain email address", s.AlertEmail)
		}
	}
	if s.MailFrom != "" {
		if a, err := mail.ParseAddress(s.MailFrom); err != nil || a.Address != s.MailFrom {
			bad("mailFrom %q is not a plain email address", s.MailFrom)
		}
	}
	if _, err := kve.ParsePrefixes(s.AllowPrivateUpstreams); err != nil {
		bad("allowPrivateUpstreams: %w", err)
	}
	if !slices.Contains(retentionDays, s.LogRetentionDays) {
		bad("logRetentionDays %d: want one of %v", s.LogRetentionDays, retentionDays)
	}
	// WAF accepts 10 to 2,000,000,000 requests per window.
	if s.WAFRateLimit < 10 || s.WAFRateLimit > 2_000_000_000 {
		bad("wafRateLimit %d: want 10 to 2000000000 requests per IP per 5 minutes", s.WAFRateLimit)
	}
	switch s.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		bad("logLevel %q: want debug, info, warn or error", s.LogLevel)
	}
	if s.AssetDir == "" {
		bad("assetDir is empty")
	}
	return errors.Join(errs...)
}

// MultiRegion reports whether the deployment spans several regions.
func (s Settings) MultiRegion() bool { return len(s.Regions) > 1 }

// certificateFor returns the certificate ARN for region ("" = the
// environment-agnostic stack, which takes the only one given).
func (s Settings) certificateFor(region string) (string, bool) {
	for _, arn := range s.CertificateARNs {
		if r, _ := certificateRegion(arn); r == region || region == "" {
			return arn, true
		}
	}
	return "", false
}

// certificateRegion returns the region field of an ACM certificate ARN.
func certificateRegion(arn string) (string, bool) {
	f := strings.Split(arn, ":")
	if len(f) != 6 || f[0] != "arn" || f[2] != "acm" || !regionPattern.MatchString(f[3]) ||
		!strings.HasPrefix(f[5], "certificate/") {
		return "", false
	}
	return f[3], true
}

// reader converts context values, collecting errors instead of stopping at
// the first.
type reader struct {
	lookup func(string) any
	errs   []error
}

func (r *reader) str(key, def string) string {
	switch v := r.lookup(key).(type) {
	case nil:
		return def
	case string:
		if v = strings.TrimSpace(v); v != "" {
			return v
		}
		return def
	default:
		r.errs = append(r.errs, fmt.Errorf("%s: want a string, got %T", key, v))
		return def
	}
}

// list accepts "a,b" (from -c) or ["a","b"] (from cdk.json).
func (r *reader) list(key string) []string {
	var raw []string
	switch v := r.lookup(key).(type) {
	case nil:
	case string:
		raw = strings.Split(v, ",")
	case []any:
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				r.errs = append(r.errs, fmt.Errorf("%s: want a list of strings, got a %T in it", key, e))
				continue
			}
			raw = append(raw, s)
		}
	default:
		r.errs = append(r.errs, fmt.Errorf("%s: want a comma-separated string or a list, got %T", key, v))
	}
	var out []string
	for _, s := range raw {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (r *reader) integer(key string, def int) int {
	switch v := r.lookup(key).(type) {
	case nil:
		return def
	case float64:
		if v == float64(int(v)) {
			return int(v)
		}
	case string:
		if v = strings.TrimSpace(v); v == "" {
			return def
		}
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	r.errs = append(r.errs, fmt.Errorf("%s: want a whole number, got %v", key, r.lookup(key)))
	return def
}

func (r *reader) boolean(key string) bool {
	switch v := r.lookup(key).(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		if b, err := strconv.ParseBool(strings.TrimSpace(v)); err == nil {
			return b
		}
	}
	r.errs = append(r.errs, fmt.Errorf("%s: want true or false, got %v", key, r.lookup(key)))
	return false
}
