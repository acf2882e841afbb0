package snsverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// signer is a locally generated key pair and self-signed certificate,
// standing in for SNS's; certs serves the certificate at the URLs a test
// registers, as SNS serves its own.
type signer struct {
	key  *rsa.PrivateKey
	pem  []byte
	mu   sync.Mutex
	hits map[string]int // certificate fetches by URL
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sns.test.invalid"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), hits: map[string]int{}}
}

// sign signs m as SNS does with SignatureVersion version.
func (s *signer) sign(t *testing.T, m *Message, version string) {
	t.Helper()
	m.SignatureVersion = version
	text, err := StringToSign(m)
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	if version == "1" {
		sum := sha1.Sum(text)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, sum[:])
	} else {
		sum := sha256.Sum256(text)
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
}

// RoundTrip serves the certificate at any .pem URL and answers 200 to
// anything else (a SubscribeURL), recording the URL: the test's view of
// the SNS domain, which the Verifier reaches through its Client.
func (s *signer) RoundTrip(r *http.Request) (*http.Response, error) {
	s.mu.Lock()
	s.hits[r.URL.String()]++
	s.mu.Unlock()
	body := []byte("<ConfirmSubscriptionResponse/>")
	if strings.HasSuffix(r.URL.Path, ".pem") {
		body = s.pem
	}
	return &http.Response{StatusCode: http.StatusOK, Body: io.NopCloser(bytes.NewReader(body)), Request: r}, nil
}

func (s *signer) fetches(url string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[url]
}

const (
	topic   = "arn:aws:sns:us-east-2:123456789012:kve-alerts"
	certURL = "https://sns.us-east-2.amazonaws.com/SimpleNotificationService-0000000000000000000000.pem"
)

func notification() *Message {
	return &Message{
		Type: TypeNotification, MessageID: "4d4dc071-ddbf-465d-bba8-08f81c89da64", TopicArn: topic,
		Subject: "kve high alert", Message: "{\n  \"version\": 1,\n  \"kind\": \"kve.breach_alert\"\n}",
		Timestamp: "2026-11-27T12:00:00.000Z", SigningCertURL: certURL,
		UnsubscribeURL:    "https://sns.us-east-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=" + topic + ":1",
		MessageAttributes: map[string]Attribute{"org": {Type: "String", Value: "org_1"}},
	}
}

func confirmation() *Message {
	return &Message{
		Type: TypeSubscriptionConfirmation, MessageID: "3d891288-136d-417f-bc05-901c108273ee", TopicArn: topic,
		Token:        "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92",
		Message:      "You have chosen to subscribe to the topic " + topic + ".\nTo confirm the subscription, visit the SubscribeURL included in this message.",
		SubscribeURL: "https://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + topic + "&Token=2336",
		Timestamp:    "2026-11-27T12:00:00.000Z", SigningCertURL: certURL,
	}
}

// TestStringToSign pins the canonical strings of the AWS documentation's
// examples ("Verifying the signatures of Amazon SNS messages").
func TestStringToSign(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		want string
	}{
		{"notification with subject", Message{Type: TypeNotification, Message: "My Test Message",
			MessageID: "4d4dc071-ddbf-465d-bba8-08f81c89da64", Subject: "My subject", Timestamp: "2019-01-31T04:37:04.321Z",
			TopicArn: "arn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P", UnsubscribeURL: "ignored"},
			"Message\nMy Test Message\nMessageId\n4d4dc071-ddbf-465d-bba8-08f81c89da64\nSubject\nMy subject\n" +
				"Timestamp\n2019-01-31T04:37:04.321Z\nTopicArn\narn:aws:sns:us-east-2:123456789012:s4-MySNSTopic-1G1WEFCOXTC0P\nType\nNotification\n"},
		{"notification without subject", Message{Type: TypeNotification, Message: "m", MessageID: "id",
			Timestamp: "ts", TopicArn: "arn"},
			"Message\nm\nMessageId\nid\nTimestamp\nts\nTopicArn\narn\nType\nNotification\n"},
		{"subscription confirmation", Message{Type: TypeSubscriptionConfirmation, Message: "My Test Message",
			MessageID: "3d891288-136d-417f-bc05-901c108273ee", SubscribeURL: "https://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription&Token=233",
			Timestamp: "2019-01-31T19:25:13.719Z", Token: "233", TopicArn: "arn:aws:sns:us-east-2:123456789012:t"},
			"Message\nMy Test Message\nMessageId\n3d891288-136d-417f-bc05-901c108273ee\n" +
				"SubscribeURL\nhttps://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription&Token=233\n" +
				"Timestamp\n2019-01-31T19:25:13.719Z\nToken\n233\nTopicArn\narn:aws:sns:us-east-2:123456789012:t\nType\nSubscriptionConfirmation\n"},
		{"unsubscribe confirmation", Message{Type: TypeUnsubscribeConfirmation, Message: "m", MessageID: "id",
			SubscribeURL: "u", Timestamp: "ts", Token: "tk", TopicArn: "arn"},
			"Message\nm\nMessageId\nid\nSubscribeURL\nu\nTimestamp\nts\nToken\ntk\nTopicArn\narn\nType\nUnsubscribeConfirmation\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := StringToSign(&tt.m)
			if err != nil || string(got) != tt.want {
				t.Errorf("StringToSign = %q, %v\nwant %q", got, err, tt.want)
			}
		})
	}
	if _, err := StringToSign(&Message{Type: "Other"}); err == nil {
		t.Error("StringToSign of an unknown type succeeded")
	}
}

func TestVerify(t *testing.T) {
	s := newSigner(t)
	tests := []struct {
		name   string
		msg    func() *Message
		signed func(m *Message) // a change after signing
		v      func(v *Verifier)
		sigVer string
		want   error // nil: verifies; errAny: some error
	}{
		{"notification", notification, nil, nil, "2", nil},
		{"notification without subject", func() *Message { m := notification(); m.Subject = ""; return m }, nil, nil, "2", nil},
		{"subscription confirmation", confirmation, nil, nil, "2", nil},
		{"message changed", notification, func(m *Message) { m.Message += " " }, nil, "2", ErrSignature},
		{"subject changed", notification, func(m *Message) { m.Subject = "kve info alert" }, nil, "2", ErrSignature},
		{"subject dropped", notification, func(m *Message) { m.Subject = "" }, nil, "2", ErrSignature},
		{"timestamp changed", notification, func(m *Message) { m.Timestamp = "2026-11-27T12:00:01.000Z" }, nil, "2", ErrSignature},
		{"message id changed", notification, func(m *Message) { m.MessageID = "other" }, nil, "2", ErrSignature},
		{"type changed", notification, func(m *Message) { m.Type = TypeUnsubscribeConfirmation }, nil, "2", ErrSignature},
		{"subscribe URL changed", confirmation, func(m *Message) {
			m.SubscribeURL = "https://sns.us-east-2.amazonaws.com/?Action=ConfirmSubscription&Token=evil"
		}, nil, "2", ErrSignature},
		{"token changed", confirmation, func(m *Message) { m.Token = "evil" }, nil, "2", ErrSignature},
		{"signature not base64", notification, func(m *Message) { m.Signature = "%%%" }, nil, "2", ErrSignature},
		{"version 1 refused by default", notification, nil, nil, "1", errAny},
		{"version 1 when allowed", notification, nil, func(v *Verifier) { v.AllowSHA1 = true }, "1", nil},
		{"version 2 signature claimed as 1", notification, func(m *Message) { m.SignatureVersion = "1" },
			func(v *Verifier) { v.AllowSHA1 = true }, "2", ErrSignature},
		{"unknown version", notification, func(m *Message) { m.SignatureVersion = "3" }, nil, "2", errAny},
		{"topic pinned", notification, nil, func(v *Verifier) { v.TopicARNs = []string{topic} }, "2", nil},
		{"another topic", notification, nil, func(v *Verifier) {
			v.TopicARNs = []string{"arn:aws:sns:us-east-2:123456789012:other"}
		}, "2", ErrTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Client: &http.Client{Transport: s}}
			if tt.v != nil {
				tt.v(v)
			}
			m := tt.msg()
			s.sign(t, m, tt.sigVer)
			if tt.signed != nil {
				tt.signed(m)
			}
			err := v.Verify(t.Context(), m)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("Verify = %v, want success", err)
			case tt.want == errAny && err == nil, tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

// TestCertURLPinned (the certificate comes only from the SNS domain of
// the topic's region, over https): a message signed with an attacker's
// key, naming the attacker's certificate, never verifies.
func TestCertURLPinned(t *testing.T) {
	s := newSigner(t)
	for _, tt := range []struct {
		name, url, topic string
		want             bool
	}{
		{"sns domain", certURL, topic, true},
		{"china", "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
			"arn:aws-cn:sns:cn-north-1:123456789012:kve-alerts", true},
		{"explicit port 443", "https://sns.us-east-2.amazonaws.com:443/SimpleNotificationService-1.pem", topic, true},
		{"http", "http://sns.us-east-2.amazonaws.com/SimpleNotificationService-1.pem", topic, false},
		{"look-alike host", "https://sns.us-east-2.amazonaws.com.evil.example/x.pem", topic, false},
		{"other host", "https://evil.example/sns.us-east-2.amazonaws.com/x.pem", topic, false},
		{"other region than the topic", "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-1.pem", topic, false},
		{"user info", "https://user@sns.us-east-2.amazonaws.com/SimpleNotificationService-1.pem", topic, false},
		{"other port", "https://sns.us-east-2.amazonaws.com:8443/SimpleNotificationService-1.pem", topic, false},
		{"not a pem", "https://sns.us-east-2.amazonaws.com/?Action=Anything", topic, false},
		{"topic without region", certURL, "not-an-arn", false},
		{"empty", "", topic, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := &Verifier{Client: &http.Client{Transport: s}}
			m := notification()
			m.SigningCertURL, m.TopicArn = tt.url, tt.topic
			s.sign(t, m, "2")
			before := s.fetches(tt.url)
			err := v.Verify(t.Context(), m)
			if got := err == nil; got != tt.want {
				t.Errorf("Verify = %v, want verified %v", err, tt.want)
			}
			if !tt.want && !errors.Is(err, ErrCertURL) {
				t.Errorf("Verify = %v, want ErrCertURL", err)
			}
			if !tt.want && s.fetches(tt.url) != before {
				t.Errorf("fetched an untrusted certificate URL")
			}
		})
	}
}

// TestLocalCertURL: local mode's certificate is trusted only under the
// configured prefix.
func TestLocalCertURL(t *testing.T) {
	s := newSigner(t)
	const prefix = "http://127.0.0.1:8080/api/local-sns/"
	v := &Verifier{Client: &http.Client{Transport: s}, CertURLPrefixes: []string{prefix}}
	for _, tt := range []struct {
		url  string
		want bool
	}{
		{prefix + "SimpleNotificationService-local.pem", true},
		{"http://127.0.0.1:8080/api/other/x.pem", false},
		{prefix + "../../x.pem", false},
		{"http://127.0.0.1:8081/api/local-sns/SimpleNotificationService-local.pem", false},
	} {
		m := notification()
		m.SigningCertURL = tt.url
		s.sign(t, m, "2")
		if err := v.Verify(t.Context(), m); (err == nil) != tt.want {
			t.Errorf("%s: Verify = %v, want verified %v", tt.url, err, tt.want)
		}
	}
}

func TestCertificateCached(t *testing.T) {
	s := newSigner(t)
	v := &Verifier{Client: &http.Client{Transport: s}}
	for range 3 {
		m := notification()
		s.sign(t, m, "2")
		if err := v.Verify(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.fetches(certURL); n != 1 {
		t.Errorf("certificate fetched %d times, want once", n)
	}
}

func TestHandler(t *testing.T) {
	s := newSigner(t)
	v := &Verifier{Client: &http.Client{Transport: s}, TopicARNs: []string{topic}}
	var mu sync.Mutex
	var got []string
	fail := false
	h := Handler(v, func(_ context.Context, m *Message) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("receiver down")
		}
		got = append(got, m.MessageID)
		return nil
	})
	post := func(m *Message) int {
		t.Helper()
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/sns", bytes.NewReader(b)))
		return rec.Code
	}

	c := confirmation()
	s.sign(t, c, "2")
	if code := post(c); code != http.StatusOK || s.fetches(c.SubscribeURL) != 1 {
		t.Errorf("confirmation: %d, SubscribeURL visited %d times", code, s.fetches(c.SubscribeURL))
	}
	n := notification()
	s.sign(t, n, "2")
	if code := post(n); code != http.StatusOK {
		t.Errorf("notification: %d", code)
	}
	forged := notification()
	forged.MessageID = "forged"
	s.sign(t, forged, "2")
	forged.Message = "{}"
	if code := post(forged); code != http.StatusBadRequest {
		t.Errorf("forged notification: %d, want 400", code)
	}
	evil := confirmation()
	evil.SubscribeURL = "https://evil.example/?Action=ConfirmSubscription"
	s.sign(t, evil, "2") // even signed, a SubscribeURL off the SNS domain is never visited
	if code := post(evil); code != http.StatusInternalServerError || s.fetches(evil.SubscribeURL) != 0 {
		t.Errorf("confirmation off the SNS domain: %d, visited %d times", code, s.fetches(evil.SubscribeURL))
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	retry := notification()
	retry.MessageID = "retry"
	s.sign(t, retry, "2")
	if code := post(retry); code != http.StatusInternalServerError {
		t.Errorf("notification the receiver failed: %d, want 500 (SNS retries)", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != n.MessageID {
		t.Errorf("notifications handled: %v, want [%s]", got, n.MessageID)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/sns", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", rec.Code)
	}
}
