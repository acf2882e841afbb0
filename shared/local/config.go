package local

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/proxy"
)

// Config is local mode's configuration: flags over environment variables.
type Config struct {
	Listen       string         // --listen, KVE_LISTEN; default 127.0.0.1:8080
	Data         string         // --data, KVE_DATA; default .kve-local
	AllowPrivate []netip.Prefix // --allow-private-upstreams, KVE_ALLOW_PRIVATE_UPSTREAMS
	Domain       string         // --domain, KVE_DOMAIN: host-form routing <provider>.<domain>
	PublicURL    string         // --public-url, KVE_PUBLIC_URL; default http://<listen>
	// SMTP is the mail server invites go through, smtp://user:pass@host:port
	// (STARTTLS when offered) or smtps://… (--smtp, KVE_SMTP). It holds a
	// password, so it is a Secret. Unset: no mail, and the inviter gets the
	// invite link to pass on.
	SMTP         kve.Secret
	MailFrom     string     // --mail-from, KVE_MAIL_FROM: the sender of invites; required with --smtp
	MaxBodyBytes int64      // --max-body-bytes; default 10 MiB
	LogLevel     slog.Level // --log-level; default info
	DrainTimeout string     // --drain-timeout; default 60s
	// ReadHeaderTimeout closes connections that do not send a request head
	// in time (slowloris, SECURITY T54).
	ReadHeaderTimeout time.Duration // --read-header-timeout; default 10s
	// Upstream timeouts (SECURITY G13); zero fields take the proxy's defaults.
	Timeouts proxy.Timeouts
	// NoMetering turns off usage records, rate limits and budgets; breach
	// detection still examines every request, so that turning it on and
	// off compares metering alone. It has no flag: it exists for the
	// benchmark that compares local mode with and without them
	// (shared/usage/README.md), never for serving.
	NoMetering bool

	// Breach alerts (alerts.go). ScanningKeysFile holds the public keys a
	// secret-scanning service signs leak reports with, in GitHub's format
	// (--secret-scanning-keys, KVE_SECRET_SCANNING_KEYS); unset, the
	// endpoint refuses every report. LeakSuspendEnvs are the environments
	// whose tokens a reported leak suspends (--leak-suspend-envs,
	// KVE_LEAK_SUSPEND_ENVS; default stg,prd).
	ScanningKeysFile string
	LeakSuspendEnvs  []kve.Env
}

// ParseConfig reads flags (args without the program name) over the
// environment (getenv). Unknown flags are errors: kve never starts with a
// setting it does not understand.
func ParseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("kve-local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	var allow, level, smtp string
	fs.StringVar(&c.Listen, "listen", env("KVE_LISTEN", "127.0.0.1:8080"), "address to serve proxy, API and dashboard on")
	fs.StringVar(&c.Data, "data", env("KVE_DATA", ".kve-local"), "data directory (store, sealed secrets, master key)")
	fs.StringVar(&allow, "allow-private-upstreams", env("KVE_ALLOW_PRIVATE_UPSTREAMS", ""), "comma-separated CIDRs that upstreams and webhooks may resolve to (e.g. 127.0.0.0/8)")
	fs.StringVar(&c.Domain, "domain", env("KVE_DOMAIN", ""), "domain for host-form routing: <provider>.<domain>")
	fs.StringVar(&c.PublicURL, "public-url", env("KVE_PUBLIC_URL", ""), "base URL users reach kve at, for links (default http://<listen>)")
	fs.StringVar(&smtp, "smtp", env("KVE_SMTP", ""), "mail server for invites: smtp://user:pass@host:port (STARTTLS when offered) or smtps://…")
	fs.StringVar(&c.MailFrom, "mail-from", env("KVE_MAIL_FROM", ""), "sender address of invite mail (with --smtp)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body-bytes", 10<<20, "largest request body the proxy accepts")
	fs.StringVar(&level, "log-level", env("KVE_LOG_LEVEL", "info"), "debug, info, warn or error")
	fs.StringVar(&c.DrainTimeout, "drain-timeout", "60s", "how long shutdown waits for open streams")
	fs.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", 10*time.Second, "longest wait for a client's request head")
	fs.DurationVar(&c.Timeouts.ResponseHeader, "upstream-header-timeout", 300*time.Second, "longest wait for an upstream's response head")
	fs.DurationVar(&c.Timeouts.StreamIdle, "stream-idle-timeout", 120*time.Second, "longest silence inside an upstream response body")
	fs.StringVar(&c.ScanningKeysFile, "secret-scanning-keys", env("KVE_SECRET_SCANNING_KEYS", ""), "file of the public keys that sign secret-scanning leak reports (GitHub's format)")
	leakEnvs := fs.String("leak-suspend-envs", env("KVE_LEAK_SUSPEND_ENVS", "stg,prd"), "environments whose tokens a reported leak suspends (comma-separated, or none)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var errs []error
	if allow != "" {
		p, err := kve.ParsePrefixes(strings.Split(allow, ","))
		if err != nil {
			errs = append(errs, fmt.Errorf("--allow-private-upstreams: %w", err))
		}
		c.AllowPrivate = p
	}
	c.SMTP = kve.Secret(smtp)
	switch {
	case smtp != "" && c.MailFrom == "":
		errs = append(errs, errors.New("--smtp needs --mail-from, the sender of invites"))
	case smtp == "" && c.MailFrom != "":
		errs = append(errs, errors.New("--mail-from needs --smtp, the server that sends"))
	case smtp != "":
		if _, err := mail.NewSMTP(smtp, c.MailFrom); err != nil { // checks without connecting
			errs = append(errs, fmt.Errorf("--smtp, --mail-from: %w", err))
		}
	}
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	var err error
	if c.LeakSuspendEnvs, err = parseEnvs(*leakEnvs); err != nil {
		errs = append(errs, fmt.Errorf("--leak-suspend-envs: %w", err))
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	c.Domain = strings.ToLower(c.Domain)
	return c, errors.Join(errs...)
}
