package alerts

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts/snsverify"
)

// LocalPath is where local mode serves its stand-in for SNS's endpoints:
// the signing certificate, the SubscribeURL and the UnsubscribeURL. It is
// under /api/, which can never name a provider.
const LocalPath = "/api/local-sns/"

// certFile is the certificate's name under LocalPath, in SNS's style.
const certFile = "SimpleNotificationService-local.pem"

// signer is local mode's SNS signing key and its self-signed certificate.
// Kept in the data directory, so a receiver that cached the certificate
// keeps verifying across restarts.
type signer struct {
	key     *rsa.PrivateKey
	certPEM []byte
	secret  []byte // HMAC key of confirmation tokens, derived from key
}

// signingFile holds the key and certificate, PEM, mode 0600.
const signingFile = "alerts-signing.pem"

// loadSigner reads the signer from dir, creating it on first use. With dir
// "" the key lives only as long as the process (tests).
func loadSigner(dir string, now time.Time) (*signer, error) {
	path := filepath.Join(dir, signingFile)
	if dir != "" {
		if b, err := os.ReadFile(path); err == nil {
			return parseSigner(b)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read alert signing key: %w", err)
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate alert signing key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("generate alert signing certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "kve local mode alerts", Organization: []string{"kve"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("generate alert signing certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode alert signing key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	if dir != "" {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write alert signing key: %w", err)
		}
	}
	return parseSigner(b)
}

func parseSigner(b []byte) (*signer, error) {
	s := &signer{}
	for {
		var block *pem.Block
		if block, b = pem.Decode(b); block == nil {
			break
		}
		switch block.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse alert signing key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, errors.New("alert signing key is not RSA")
			}
			s.key = rk
			sum := sha256.Sum256(append([]byte("kve local sns tokens\x00"), block.Bytes...))
			s.secret = sum[:]
		case "CERTIFICATE":
			s.certPEM = pem.EncodeToMemory(block)
		}
	}
	if s.key == nil || s.certPEM == nil {
		return nil, errors.New("alert signing file lacks its key or certificate")
	}
	return s, nil
}

// sign signs m with SignatureVersion 2 (SHA256withRSA), as SNS signs.
func (s *signer) sign(m *snsverify.Message) error {
	m.SignatureVersion = "2"
	text, err := snsverify.StringToSign(m)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(text)
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	if err != nil {
		return fmt.Errorf("sign alert: %w", err)
	}
	m.Signature = base64.StdEncoding.EncodeToString(sig)
	return nil
}

// confirmToken is the Token of a subscription's confirmation:
// <org>.<subscription>.<HMAC>, so that the SubscribeURL alone names the
// subscription and proves it came from kve.
func (s *signer) confirmToken(orgID, subID string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(orgID + "/" + subID))
	return orgID + "." + subID + "." + hex.EncodeToString(m.Sum(nil))
}

// parseConfirmToken splits a confirmation token; the caller checks its
// hash against the subscription's.
func parseConfirmToken(token string) (orgID, subID, secret string, ok bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// confirmHash is what a subscription stores of its confirmation token.
func confirmHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// newMessageID returns a random UUID (version 4), SNS's MessageId form.
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (Go ≥ 1.24)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// snsTime formats a timestamp as SNS does: UTC, milliseconds.
func snsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
