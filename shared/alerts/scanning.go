package alerts

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
)

// ScanningKeys are the public keys a secret-scanning service signs its
// reports with, by key identifier: for GitHub's secret scanning partner
// program, the list at https://api.github.com/meta/public_keys/secret_scanning
// (ECDSA P-256, SHA-256, ASN.1 signatures). kve reads them from
// configuration and never fetches them: what signs a leak report that
// suspends tokens is the operator's decision.
type ScanningKeys struct {
	keys map[string]*ecdsa.PublicKey
}

// ParseScanningKeys reads keys in GitHub's format:
// {"public_keys":[{"key_identifier":"…","key":"-----BEGIN PUBLIC KEY-----…","is_current":true}]}.
func ParseScanningKeys(b []byte) (*ScanningKeys, error) {
	var doc struct {
		PublicKeys []struct {
			ID  string `json:"key_identifier"`
			Key string `json:"key"`
		} `json:"public_keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("secret scanning keys: %w", err)
	}
	if len(doc.PublicKeys) == 0 {
		return nil, errors.New("secret scanning keys: the list is empty")
	}
	k := &ScanningKeys{keys: map[string]*ecdsa.PublicKey{}}
	for _, pk := range doc.PublicKeys {
		block, _ := pem.Decode([]byte(pk.Key))
		if pk.ID == "" || block == nil {
			return nil, fmt.Errorf("secret scanning keys: key %q is not a PEM public key", pk.ID)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("secret scanning keys: key %q: %w", pk.ID, err)
		}
		ec, ok := pub.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("secret scanning keys: key %q is not ECDSA", pk.ID)
		}
		k.keys[pk.ID] = ec
	}
	return k, nil
}

// ErrReportSignature answers a report whose signature does not verify.
var ErrReportSignature = errors.New("the report's signature does not verify")

// Verify checks the signature of a report body: signature is the base64
// ASN.1 ECDSA signature over SHA-256 of the raw body (the
// Github-Public-Key-Signature header), by the key keyID names
// (Github-Public-Key-Identifier).
func (k *ScanningKeys) Verify(keyID, signature string, body []byte) error {
	pub, ok := k.keys[keyID]
	if !ok {
		return ErrReportSignature
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return ErrReportSignature
	}
	sum := sha256.Sum256(body)
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return ErrReportSignature
	}
	return nil
}

// LeakReport is one match a secret-scanning service reports.
type LeakReport struct {
	Token  string `json:"token"`
	Type   string `json:"type"`
	URL    string `json:"url"`
	Source string `json:"source"`
}

// LeakVerdict answers one report in GitHub's feedback format: the token as
// its SHA-256 (never the raw token), and whether it is one of kve's live
// or once-live tokens (true_positive) or not (false_positive).
type LeakVerdict struct {
	TokenHash string `json:"token_hash"`
	TokenType string `json:"token_type"`
	Label     string `json:"label"`
}

// Verdict labels.
const (
	TruePositive  = "true_positive"
	FalsePositive = "false_positive"
)

// TokenHash is the SHA-256 of a reported token, hex.
func TokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
