// Package snsverify verifies the messages Amazon SNS delivers to HTTP(S)
// endpoints, for receivers of kve's breach alerts: SignatureVersion 2
// (SHA256withRSA) over the canonical string of the message's fields,
// with the signing certificate fetched only from the SNS domain (https,
// host sns.<the topic's region>.amazonaws.com or .amazonaws.com.cn), and
// subscription confirmation. It uses the standard library only, so a
// receiver can copy it whole.
//
// kve's local mode sends the same messages, signed with its own key, whose
// certificate it serves at a local URL: a receiver trusts that URL with
// Verifier.CertURLPrefixes and then works unchanged against SNS.
package snsverify

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// Message is the JSON document SNS posts to an HTTP(S) endpoint.
type Message struct {
	Type              string               `json:"Type"`
	MessageID         string               `json:"MessageId"`
	Token             string               `json:"Token,omitempty"`
	TopicArn          string               `json:"TopicArn"`
	Subject           string               `json:"Subject,omitempty"`
	Message           string               `json:"Message"`
	Timestamp         string               `json:"Timestamp"`
	SignatureVersion  string               `json:"SignatureVersion"`
	Signature         string               `json:"Signature"`
	SigningCertURL    string               `json:"SigningCertURL"`
	SubscribeURL      string               `json:"SubscribeURL,omitempty"`
	UnsubscribeURL    string               `json:"UnsubscribeURL,omitempty"`
	MessageAttributes map[string]Attribute `json:"MessageAttributes,omitempty"`
}

// Attribute is a message attribute as SNS delivers it.
type Attribute struct {
	Type  string `json:"Type"`
	Value string `json:"Value"`
}

// Message types.
const (
	TypeNotification             = "Notification"
	TypeSubscriptionConfirmation = "SubscriptionConfirmation"
	TypeUnsubscribeConfirmation  = "UnsubscribeConfirmation"
)

// StringToSign returns the canonical string SNS signs: for a notification
// the fields Message, MessageId, Subject (when present), Timestamp,
// TopicArn and Type; for a (un)subscribe confirmation Message, MessageId,
// SubscribeURL, Timestamp, Token, TopicArn and Type; each as its name, a
// newline, its value and a newline, in that (byte-sorted) order.
func StringToSign(m *Message) ([]byte, error) {
	var fields [][2]string
	switch m.Type {
	case TypeNotification:
		fields = [][2]string{{"Message", m.Message}, {"MessageId", m.MessageID}}
		if m.Subject != "" {
			fields = append(fields, [2]string{"Subject", m.Subject})
		}
		fields = append(fields, [][2]string{{"Timestamp", m.Timestamp}, {"TopicArn", m.TopicArn}, {"Type", m.Type}}...)
	case TypeSubscriptionConfirmation, TypeUnsubscribeConfirmation:
		fields = [][2]string{{"Message", m.Message}, {"MessageId", m.MessageID}, {"SubscribeURL", m.SubscribeURL},
			{"Timestamp", m.Timestamp}, {"Token", m.Token}, {"TopicArn", m.TopicArn}, {"Type", m.Type}}
	default:
		return nil, fmt.Errorf("snsverify: unknown message type %q", m.Type)
	}
	var b bytes.Buffer
	for _, f := range fields {
		b.WriteString(f[0])
		b.WriteByte('\n')
		b.WriteString(f[1])
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// Verifier checks SNS messages. The zero value trusts certificates from the
// SNS domain of each message's topic region only; set TopicARNs to accept
// only your topics. It caches certificates by URL and is safe for
// concurrent use once configured.
type Verifier struct {
	// TopicARNs, when set, are the only topics whose messages are
	// accepted (SNS advises rejecting any other TopicArn).
	TopicARNs []string
	// CertURLPrefixes are further URL prefixes a certificate may come
	// from, such as kve local mode's
	// "http://127.0.0.1:8080/api/local-sns/". Never needed for SNS.
	CertURLPrefixes []string
	// AllowSHA1 accepts SignatureVersion 1 (SHA1withRSA); kve's topic
	// signs with version 2, so by default version 1 is refused.
	AllowSHA1 bool
	// Client fetches certificates and confirms subscriptions; default
	// http.DefaultClient.
	Client *http.Client

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

// Errors a verification fails with.
var (
	ErrSignature = errors.New("snsverify: signature does not verify")
	ErrCertURL   = errors.New("snsverify: signing certificate URL is not trusted")
	ErrTopic     = errors.New("snsverify: message of an unexpected topic")
)

// snsHost is the SNS domain of a region.
var snsHost = regexp.MustCompile(`^sns\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)

// Parse decodes an SNS message body and verifies it.
func (v *Verifier) Parse(ctx context.Context, body []byte) (*Message, error) {
	var m Message
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("snsverify: decode message: %w", err)
	}
	if err := v.Verify(ctx, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// Verify checks m's topic, signing certificate URL and signature.
func (v *Verifier) Verify(ctx context.Context, m *Message) error {
	if len(v.TopicARNs) > 0 && !slices.Contains(v.TopicARNs, m.TopicArn) {
		return ErrTopic
	}
	var hash crypto.Hash
	switch m.SignatureVersion {
	case "2":
		hash = crypto.SHA256
	case "1":
		if !v.AllowSHA1 {
			return fmt.Errorf("snsverify: SignatureVersion 1 (SHA1) is not accepted")
		}
		hash = crypto.SHA1
	default:
		return fmt.Errorf("snsverify: unknown SignatureVersion %q", m.SignatureVersion)
	}
	if !v.trusted(m.SigningCertURL, m.TopicArn, true) {
		return ErrCertURL
	}
	text, err := StringToSign(m)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return ErrSignature
	}
	cert, err := v.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("snsverify: signing certificate has no RSA key")
	}
	var digest []byte
	if hash == crypto.SHA256 {
		sum := sha256.Sum256(text)
		digest = sum[:]
	} else {
		sum := sha1.Sum(text)
		digest = sum[:]
	}
	if rsa.VerifyPKCS1v15(pub, hash, digest, sig) != nil {
		return ErrSignature
	}
	return nil
}

// trusted reports whether raw is a URL kve may fetch for the topic: on the
// SNS domain of the topic's region over https (a .pem, for a
// certificate), or under one of CertURLPrefixes.
func (v *Verifier) trusted(raw, topicARN string, pemFile bool) bool {
	for _, p := range v.CertURLPrefixes {
		if p != "" && strings.HasPrefix(raw, p) && !strings.Contains(raw[len(p):], "..") {
			return true
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Port() != "" && u.Port() != "443" {
		return false
	}
	match := snsHost.FindStringSubmatch(u.Hostname())
	if match == nil || match[1] != region(topicARN) {
		return false
	}
	return !pemFile || strings.HasSuffix(u.Path, ".pem")
}

// region returns the region field of an ARN.
func region(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" {
		return ""
	}
	return parts[3]
}

func (v *Verifier) client() *http.Client {
	if v.Client != nil {
		return v.Client
	}
	return http.DefaultClient
}

// cert fetches (once) and parses the certificate at a trusted URL.
func (v *Verifier) cert(ctx context.Context, raw string) (*x509.Certificate, error) {
	v.mu.Lock()
	c, ok := v.certs[raw]
	v.mu.Unlock()
	if ok {
		return c, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("snsverify: fetch certificate: %w", err)
	}
	res, err := v.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("snsverify: fetch certificate: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("snsverify: fetch certificate: status %d (%v)", res.StatusCode, err)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("snsverify: signing certificate is not PEM")
	}
	c, err = x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("snsverify: parse signing certificate: %w", err)
	}
	v.mu.Lock()
	if v.certs == nil {
		v.certs = map[string]*x509.Certificate{}
	}
	v.certs[raw] = c
	v.mu.Unlock()
	return c, nil
}

// Confirm confirms the subscription of a verified SubscriptionConfirmation
// by visiting its SubscribeURL, which must be on the SNS domain of the
// topic's region (or under CertURLPrefixes' hosts' prefixes, for local
// mode).
func (v *Verifier) Confirm(ctx context.Context, m *Message) error {
	if m.Type != TypeSubscriptionConfirmation {
		return fmt.Errorf("snsverify: %s is not a subscription confirmation", m.Type)
	}
	if !v.trusted(m.SubscribeURL, m.TopicArn, false) {
		return fmt.Errorf("snsverify: SubscribeURL is not on the SNS domain")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.SubscribeURL, nil)
	if err != nil {
		return fmt.Errorf("snsverify: confirm subscription: %w", err)
	}
	res, err := v.client().Do(req)
	if err != nil {
		return fmt.Errorf("snsverify: confirm subscription: %w", err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("snsverify: confirm subscription: status %d", res.StatusCode)
	}
	return nil
}
