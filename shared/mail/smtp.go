package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// SMTP sends through a mail server, for local mode: configured by a URL,
// smtp://user:pass@host:port (STARTTLS when the server offers it) or
// smtps://user:pass@host:port (TLS from the start). Without TLS a password
// goes only by a challenge mechanism (CRAM-MD5, SCRAM), never in the clear:
// a server that offers only PLAIN or LOGIN over plain text is refused.
type SMTP struct {
	from    string
	host    string
	options []gomail.Option
}

// SMTPOption adjusts an SMTP sender.
type SMTPOption func(*smtpConfig)

type smtpConfig struct {
	tls     *tls.Config
	timeout time.Duration
}

// WithTLSConfig sets the TLS configuration (the CAs a test trusts, say);
// its ServerName defaults to the URL's host.
func WithTLSConfig(c *tls.Config) SMTPOption { return func(s *smtpConfig) { s.tls = c } }

// WithTimeout bounds each connection, 15 seconds by default.
func WithTimeout(d time.Duration) SMTPOption { return func(s *smtpConfig) { s.timeout = d } }

// NewSMTP returns a sender on the server rawURL names, from the address
// from. It connects only when it sends.
func NewSMTP(rawURL, from string, opts ...SMTPOption) (*SMTP, error) {
	if _, err := Address(from); err != nil {
		return nil, fmt.Errorf("mail: sender %q: %w", from, err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("mail: the SMTP URL does not parse") // the URL holds a password: not quoted
	}
	cfg := smtpConfig{timeout: 15 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	host := u.Hostname()
	if host == "" || u.Path != "" && u.Path != "/" || u.RawQuery != "" {
		return nil, errors.New("mail: the SMTP URL must be smtp://user:pass@host:port or smtps://…")
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.tls != nil {
		tc = cfg.tls.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	options := []gomail.Option{gomail.WithTimeout(cfg.timeout), gomail.WithTLSConfig(tc)}
	var port int
	switch u.Scheme {
	case "smtp":
		port = 587
		options = append(options, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case "smtps":
		port = 465
		options = append(options, gomail.WithSSL())
	default:
		return nil, errors.New("mail: the SMTP URL's scheme must be smtp or smtps")
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, errors.New("mail: the SMTP URL's port is not valid")
		}
	}
	options = append(options, gomail.WithPort(port))
	if user := u.User.Username(); user != "" {
		pass, _ := u.User.Password()
		// Auto-discovery picks the strongest mechanism the server offers,
		// and none that sends the password in the clear without TLS.
		options = append(options, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(user), gomail.WithPassword(pass))
	}
	return &SMTP{from: from, host: host, options: options}, nil
}

// Send implements Sender: one connection per message, which is plenty for
// invites.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	to, subject, err := check(m)
	if err != nil {
		return err
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return fmt.Errorf("mail: sender: %w", err)
	}
	if err := msg.To(to.Address); err != nil {
		return fmt.Errorf("mail: recipient: %w", err)
	}
	msg.Subject(subject)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	client, err := gomail.NewClient(s.host, s.options...)
	if err != nil {
		return fmt.Errorf("mail: smtp client: %w", err)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("send mail through SMTP: %w", err)
	}
	return nil
}
