// Package stackenv is the contract between the CDK stack (infra/) and the
// Lambda functions: the environment variables the stack sets on each
// function, which of them each function requires, and how a function reads
// them into its Config. It imports nothing heavy, so the infra tests can
// check the stack against it without compiling the application.
package stackenv

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Environment variables, set by the stack. Secrets never sit in them: the
// stack passes secret ARNs and the function reads the values at start.
const (
	EnvTable         = "KVE_TABLE"                   // DynamoDB table name
	EnvPepperSecret  = "KVE_PEPPER_SECRET_ARN"       // token/session HMAC pepper
	EnvSealSecret    = "KVE_SEAL_SECRET_ARN"         // token sealing key
	EnvSetupSecret   = "KVE_SETUP_SECRET_ARN"        // one-time setup code
	EnvKMSKey        = "KVE_KMS_KEY_ARN"             // customer-managed key for new secrets
	EnvAlertTopic    = "KVE_ALERT_TOPIC_ARN"         // SNS topic for breach alerts
	EnvAlertDLQ      = "KVE_ALERT_DLQ_ARN"           // dead-letter queue of the alert subscriptions the api makes
	EnvDomain        = "KVE_DOMAIN"                  // host-form routing: <provider>.<domain>
	EnvPublicURL     = "KVE_PUBLIC_URL"              // base URL of the dashboard and API, for links
	EnvMailFrom      = "KVE_MAIL_FROM"               // SES sender of invite mail
	EnvAllowPrivate  = "KVE_ALLOW_PRIVATE_UPSTREAMS" // CIDRs upstreams and webhooks may resolve to
	EnvKeyCacheTTL   = "KVE_KEY_CACHE_TTL"           // real-key cache lifetime, default 5m
	EnvMaxBodyBytes  = "KVE_MAX_BODY_BYTES"          // request body cap, default 10 MiB
	EnvLogLevel      = "KVE_LOG_LEVEL"               // debug, info, warn, error
	EnvSecretsPrefix = "KVE_SECRETS_PREFIX"          // name prefix for key secrets, default kve/
	// EnvReplicaRegions lists, comma-separated, the other regions of a
	// multi-region deployment: every key secret the function creates is
	// replicated to each, so that region's proxy can read it. Unset in a
	// single-region deployment.
	EnvReplicaRegions = "KVE_REPLICA_REGIONS"
	// EnvReplicaKMSKey is the KMS key of those replicas, the same in every
	// region: an alias (the stack's alias/<name>, which exists in each
	// region) or a key ARN. Required with EnvReplicaRegions.
	EnvReplicaKMSKey = "KVE_REPLICA_KMS_KEY"
	// EnvSecretScanningKeys holds the public keys that sign
	// secret-scanning leak reports, as GitHub publishes them
	// ({"public_keys":[…]}); unset, the api refuses every report.
	EnvSecretScanningKeys = "KVE_SECRET_SCANNING_KEYS"
	// EnvLeakSuspendEnvs lists the environments whose tokens a reported
	// leak suspends, comma-separated, or none; default stg,prd.
	EnvLeakSuspendEnvs = "KVE_LEAK_SUSPEND_ENVS"
)

// Required lists, per function, the variables its Config cannot start
// without. The infra tests check that the stack sets each of them.
var Required = map[string][]string{
	"proxy":   {EnvTable, EnvPepperSecret, EnvAlertTopic},
	"api":     {EnvTable, EnvPepperSecret, EnvSealSecret, EnvSetupSecret, EnvKMSKey, EnvAlertTopic, EnvPublicURL},
	"console": {EnvTable, EnvPepperSecret, EnvSealSecret, EnvSetupSecret, EnvKMSKey, EnvAlertTopic, EnvPublicURL},
}

// Config is one function's configuration, read once at start.
type Config struct {
	Function     string // proxy, api or console
	Table        string
	PepperSecret string
	SealSecret   string
	SetupSecret  string
	KMSKey       string
	AlertTopic   string
	AlertDLQ     string // "" when the stack names no dead-letter queue
	Domain       string
	PublicURL    string
	MailFrom     string
	AllowPrivate []netip.Prefix
	KeyCacheTTL  time.Duration
	MaxBodyBytes int64
	LogLevel     string
	// ReplicaRegions and ReplicaKMSKey are where and under which key key
	// secrets are replicated; none in a single-region deployment.
	ReplicaRegions []string
	ReplicaKMSKey  string
	// SecretScanningKeys is EnvSecretScanningKeys as set (package alerts
	// parses it); LeakSuspendEnvs is nil when unset (the default applies).
	SecretScanningKeys string
	LeakSuspendEnvs    []kve.Env
}

// Load reads and validates the configuration of function from getenv
// (os.Getenv in production, a map in tests).
func Load(function string, getenv func(string) string) (Config, error) {
	req, ok := Required[function]
	if !ok {
		return Config{}, fmt.Errorf("stackenv: unknown function %q", function)
	}
	var errs []error
	for _, name := range req {
		if getenv(name) == "" {
			errs = append(errs, fmt.Errorf("%s is not set", name))
		}
	}
	c := Config{
		Function:     function,
		Table:        getenv(EnvTable),
		PepperSecret: getenv(EnvPepperSecret),
		SealSecret:   getenv(EnvSealSecret),
		SetupSecret:  getenv(EnvSetupSecret),
		KMSKey:       getenv(EnvKMSKey),
		AlertTopic:   getenv(EnvAlertTopic),
		AlertDLQ:     getenv(EnvAlertDLQ),
		Domain:       strings.ToLower(getenv(EnvDomain)),
		PublicURL:    strings.TrimRight(getenv(EnvPublicURL), "/"),
		MailFrom:     getenv(EnvMailFrom),
		KeyCacheTTL:  5 * time.Minute,
		MaxBodyBytes: 10 << 20,
		LogLevel:     getenv(EnvLogLevel),
	}
	if v := getenv(EnvAllowPrivate); v != "" {
		p, err := kve.ParsePrefixes(strings.Split(v, ","))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvAllowPrivate, err))
		}
		c.AllowPrivate = p
	}
	if v := getenv(EnvKeyCacheTTL); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > time.Hour {
			errs = append(errs, fmt.Errorf("%s: want a duration up to 1h, got %q", EnvKeyCacheTTL, v))
		}
		c.KeyCacheTTL = d
	}
	if v := getenv(EnvMaxBodyBytes); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 {
			errs = append(errs, fmt.Errorf("%s: want a byte count ≥ 1024, got %q", EnvMaxBodyBytes, v))
		}
		c.MaxBodyBytes = n
	}
	if v := getenv(EnvReplicaRegions); v != "" {
		regions, err := replicaRegions(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvReplicaRegions, err))
		}
		c.ReplicaRegions = regions
		if c.ReplicaKMSKey = getenv(EnvReplicaKMSKey); c.ReplicaKMSKey == "" {
			// Without it the replicas would fall back to each region's AWS
			// managed key, outside the customer-managed key kve's secrets
			// are kept under.
			errs = append(errs, fmt.Errorf("%s is not set (%s needs it)", EnvReplicaKMSKey, EnvReplicaRegions))
		}
	}
	c.SecretScanningKeys = getenv(EnvSecretScanningKeys)
	if v := getenv(EnvLeakSuspendEnvs); v != "" {
		c.LeakSuspendEnvs = []kve.Env{}
		for e := range strings.SplitSeq(v, ",") {
			if v == "none" {
				break
			}
			env, ok := kve.ParseEnv(strings.TrimSpace(e))
			if !ok {
				errs = append(errs, fmt.Errorf("%s: %q is not dev, stg or prd", EnvLeakSuspendEnvs, e))
				continue
			}
			c.LeakSuspendEnvs = append(c.LeakSuspendEnvs, env)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("%s configuration: %w", function, err)
	}
	return c, nil
}

// regionPattern is Secrets Manager's pattern for a replica region.
var regionPattern = regexp.MustCompile(`^([a-z]+-)+[0-9]+$`)

// replicaRegions parses a comma-separated list of distinct regions.
func replicaRegions(v string) ([]string, error) {
	var out []string
	for r := range strings.SplitSeq(v, ",") {
		r = strings.TrimSpace(r)
		switch {
		case !regionPattern.MatchString(r):
			return nil, fmt.Errorf("%q is not a region", r)
		case slices.Contains(out, r):
			return nil, fmt.Errorf("%s is listed twice", r)
		}
		out = append(out, r)
	}
	return out, nil
}
