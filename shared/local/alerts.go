package local

import (
	"fmt"
	"os"
	"strings"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/mail"
	"github.com/keyvault-edge/kve/shared/proxy"
)

// openAlerts sets up breach alerts in local mode, where there is no SNS:
// the Local channel delivers SNS-shaped messages to webhooks (through the
// proxy's guarded transport: private addresses only as
// --allow-private-upstreams allows) and mails through --smtp, from an
// outbox in the store; detection runs in its own goroutine in front of
// the meter (Queued), so it never delays a response.
func (m *Main) openAlerts(c Config, deps *proxy.Deps) error {
	var mailer mail.Sender
	if c.SMTP != "" {
		var err error
		if mailer, err = mail.NewSMTP(c.SMTP.Reveal(), c.MailFrom); err != nil {
			return err
		}
	}
	if c.ScanningKeysFile != "" {
		b, err := os.ReadFile(c.ScanningKeysFile)
		if err != nil {
			return fmt.Errorf("--secret-scanning-keys: %w", err)
		}
		if m.scanning, err = alerts.ParseScanningKeys(b); err != nil {
			return fmt.Errorf("--secret-scanning-keys: %w", err)
		}
	}
	var err error
	m.alerts, err = alerts.NewLocal(m.store, alerts.LocalConfig{
		BaseURL:   c.PublicURL,
		Dir:       c.Data,
		Transport: proxy.NewTransport(c.Timeouts, c.AllowPrivate),
		Mail:      mailer,
		Logger:    m.Logger,
	})
	if err != nil {
		return fmt.Errorf("open alerts: %w", err)
	}
	detector := alerts.NewDetector(m.store, alerts.DetectorConfig{Logger: m.Logger})
	responder := alerts.NewResponder(m.store, m.alerts, alerts.ResponderConfig{PublicURL: c.PublicURL, Logger: m.Logger})
	m.detector = alerts.Queued(deps.Recorder, detector, responder, m.Logger)
	deps.Recorder = m.detector
	return nil
}

// closeAlerts examines what detection has queued, then stops delivery;
// deliveries still pending stay in the outbox for the next start.
func (m *Main) closeAlerts() {
	if m.detector != nil {
		m.detector.Close()
	}
	if m.alerts != nil {
		m.alerts.Close()
	}
}

// parseEnvs reads a comma-separated list of environments; "none" (or "")
// is none.
func parseEnvs(s string) ([]kve.Env, error) {
	out := []kve.Env{}
	if strings.TrimSpace(s) == "none" {
		return out, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		e, ok := kve.ParseEnv(part)
		if !ok {
			return nil, fmt.Errorf("%q is not dev, stg or prd", part)
		}
		out = append(out, e)
	}
	return out, nil
}
