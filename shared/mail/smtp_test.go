package mail

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Fake SMTP credentials: the server accepts only these.
const (
	smtpUser = "kve-test"
	smtpPass = "smtp-pass-FAKE-0123"
)

// smtpServer is an in-process SMTP server (emersion/go-smtp) on a loopback
// TCP port that keeps every message it receives, as sent.
type smtpServer struct {
	addr  string
	certs *x509.CertPool // trusts the server's certificate

	mu       sync.Mutex
	messages []received
	authed   []string // mechanisms that authenticated
}

type received struct {
	from string
	to   []string
	data []byte
	tls  bool
}

// serverMode says how the test server talks.
type serverMode int

const (
	startTLS    serverMode = iota // plain connection offering STARTTLS and AUTH PLAIN after it
	implicitTLS                   // TLS from the first byte (smtps)
	plainOnly                     // no TLS at all, AUTH PLAIN offered in the clear
)

func newSMTPServer(t *testing.T, mode serverMode) *smtpServer {
	t.Helper()
	cert, pool := selfSigned(t)
	s := &smtpServer{certs: pool}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &smtpSession{srv: s, tls: isTLS}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.ErrorLog = testLogger{t}
	var l net.Listener
	var err error
	switch mode {
	case startTLS:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		l, err = net.Listen("tcp", "127.0.0.1:0")
	case implicitTLS:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		l, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	case plainOnly:
		srv.AllowInsecureAuth = true
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return s
}

func (s *smtpServer) received() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.messages...)
}

type smtpSession struct {
	srv  *smtpServer
	tls  bool
	msg  received
	auth bool
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if user != smtpUser || pass != smtpPass {
			return errors.New("invalid credentials")
		}
		s.auth = true
		s.srv.mu.Lock()
		s.srv.authed = append(s.srv.authed, mech)
		s.srv.mu.Unlock()
		return nil
	}), nil
}

func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.auth {
		return smtp.ErrAuthRequired
	}
	s.msg = received{from: from, tls: s.tls}
	return nil
}

func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = b
	s.srv.mu.Lock()
	s.srv.messages = append(s.srv.messages, s.msg)
	s.srv.mu.Unlock()
	return nil
}

func (s *smtpSession) Reset()        { s.msg = received{tls: s.tls} }
func (s *smtpSession) Logout() error { return nil }

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, v ...any) { l.t.Logf("smtp server: "+format, v...) }
func (l testLogger) Println(v ...any)               { l.t.Log(append([]any{"smtp server:"}, v...)...) }

// selfSigned makes a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kve test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// hostileInvite is an invite whose attacker-controlled fields try header
// injection, a bidirectional override and sheer length.
func hostileInvite() Invite {
	return Invite{
		To:           "new@example.com",
		Org:          "Acme\r\nBcc: victim@example.com\r\nX-Evil: 1" + strings.Repeat(" long", 50),
		Inviter:      "Mallory\u202Egnp.exe",
		InviterEmail: "mallory@example.com",
		Role:         "developer",
		Link:         "https://kve.example.com/invite/CODE-FAKE-0123456789",
		Expires:      time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC),
	}
}

func TestSMTPSendsAnInvite(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   serverMode
		scheme string
	}{
		{"starttls", startTLS, "smtp"},
		{"implicit tls", implicitTLS, "smtps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newSMTPServer(t, tc.mode)
			sender, err := NewSMTP(tc.scheme+"://"+smtpUser+":"+smtpPass+"@"+srv.addr, "kve@example.com",
				WithTLSConfig(&tls.Config{RootCAs: srv.certs}), WithTimeout(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			inv := hostileInvite()
			m, err := inv.Message()
			if err != nil {
				t.Fatal(err)
			}
			if err := sender.Send(t.Context(), m); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := srv.received()
			if len(got) != 1 {
				t.Fatalf("server received %d messages, want 1", len(got))
			}
			r := got[0]
			if !r.tls {
				t.Error("the message travelled without TLS")
			}
			if r.from != "kve@example.com" || len(r.to) != 1 || r.to[0] != "new@example.com" {
				t.Errorf("envelope from %q to %q, want kve@example.com to new@example.com only", r.from, r.to)
			}
			checkInviteMessage(t, r.data, inv)
		})
	}
}

// checkInviteMessage reads the message as a mail client would and checks
// its headers and text.
func checkInviteMessage(t *testing.T, raw []byte, inv Invite) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("the message does not parse: %v\n%s", err, raw)
	}
	h := msg.Header
	for _, name := range []string{"Bcc", "Cc", "X-Evil"} {
		if v := h.Get(name); v != "" {
			t.Errorf("header %s: %q was injected", name, v)
		}
	}
	if to, err := h.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != inv.To {
		t.Errorf("To = %v (%v), want only %s", to, err, inv.To)
	}
	if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Address != "kve@example.com" {
		t.Errorf("From = %v (%v)", from, err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatalf("Subject does not decode: %v", err)
	}
	if strings.ContainsAny(subject, "\r\n\u202E") || !strings.Contains(subject, "Acme Bcc: victim@example.com X-Evil: 1") {
		t.Errorf("Subject = %q", subject)
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type = %q, want plain text", ct)
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.EqualFold(h.Get("Content-Transfer-Encoding"), "quoted-printable") {
		if body, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body))); err != nil {
			t.Fatal(err)
		}
	}
	text := string(body)
	if n := strings.Count(text, inv.Link); n != 1 {
		t.Errorf("the text holds the link %d times, want once:\n%s", n, text)
	}
	// The invite link is the only secret a message may carry.
	for _, secret := range []string{smtpPass, "kve_", "kvm_", "\u202E"} {
		if strings.Contains(string(raw), secret) || strings.Contains(text, secret) {
			t.Errorf("the message holds %q", secret)
		}
	}
}

// TestSMTPKeepsThePasswordOffPlainText: a server that offers no TLS but
// takes AUTH PLAIN in the clear never receives the password.
func TestSMTPKeepsThePasswordOffPlainText(t *testing.T) {
	srv := newSMTPServer(t, plainOnly)
	sender, err := NewSMTP("smtp://"+smtpUser+":"+smtpPass+"@"+srv.addr, "kve@example.com", WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := hostileInvite().Message()
	err = sender.Send(t.Context(), m)
	if err == nil {
		t.Fatal("Send succeeded over a connection without TLS")
	}
	if strings.Contains(err.Error(), smtpPass) {
		t.Errorf("the error shows the password: %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.authed) != 0 || len(srv.messages) != 0 {
		t.Errorf("server authenticated %v and received %d messages", srv.authed, len(srv.messages))
	}
}

func TestNewSMTPRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "http://mail.example.com", "smtp://", "smtp://mail.example.com:0", "smtp://mail.example.com:x",
		"smtp://mail.example.com/path", "smtp://mail.example.com?x=1", "smtp://user:" + smtpPass + "@mail example.com"} {
		_, err := NewSMTP(u, "kve@example.com")
		if err == nil {
			t.Errorf("NewSMTP(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), smtpPass) {
			t.Errorf("NewSMTP error shows the password: %v", err)
		}
	}
	if _, err := NewSMTP("smtp://mail.example.com", "not an address"); err == nil {
		t.Error("NewSMTP accepted a bad sender")
	}
}
