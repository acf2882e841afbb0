package alerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"testing"
)

// scanningKey is a locally generated P-256 key pair standing in for
// GitHub's secret scanning key.
type scanningKey struct {
	id   string
	priv *ecdsa.PrivateKey
}

func newScanningKey(t testing.TB, id string) scanningKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return scanningKey{id: id, priv: priv}
}

// Meta returns keys in the format of GitHub's meta endpoint.
func scanningMeta(t testing.TB, keys ...scanningKey) []byte {
	t.Helper()
	type entry struct {
		ID      string `json:"key_identifier"`
		Key     string `json:"key"`
		Current bool   `json:"is_current"`
	}
	var doc struct {
		PublicKeys []entry `json:"public_keys"`
	}
	for _, k := range keys {
		der, err := x509.MarshalPKIXPublicKey(&k.priv.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		doc.PublicKeys = append(doc.PublicKeys, entry{ID: k.id, Key: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), Current: true})
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign signs body as GitHub does: ECDSA P-256 over SHA-256, ASN.1, base64.
func (k scanningKey) sign(t testing.TB, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, k.priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

func TestScanningKeys(t *testing.T) {
	current, old, stranger := newScanningKey(t, "bcb5366"), newScanningKey(t, "90a4211"), newScanningKey(t, "90a4211")
	keys, err := ParseScanningKeys(scanningMeta(t, current, old))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`[{"token":"kve_hb_dev_x","type":"kve_token","url":"https://github.com/o/r/blob/1/.env","source":"content"}]`)
	for _, tt := range []struct {
		name      string
		id, sig   string
		body      []byte
		wantValid bool
	}{
		{"current key", current.id, current.sign(t, body), body, true},
		{"older key still listed", old.id, old.sign(t, body), body, true},
		{"body changed", current.id, current.sign(t, body), append([]byte{' '}, body...), false},
		{"other key's id", old.id, current.sign(t, body), body, false},
		{"unknown id", "ffff", current.sign(t, body), body, false},
		{"key not listed, listed id", stranger.id, stranger.sign(t, body), body, false},
		{"not base64", current.id, "%%%", body, false},
		{"empty", "", "", body, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := keys.Verify(tt.id, tt.sig, tt.body)
			if (err == nil) != tt.wantValid || err != nil && !errors.Is(err, ErrReportSignature) {
				t.Errorf("Verify = %v, want valid %v", err, tt.wantValid)
			}
		})
	}
	for name, doc := range map[string]string{
		"not json":  "nope",
		"empty":     `{"public_keys":[]}`,
		"not pem":   `{"public_keys":[{"key_identifier":"a","key":"abc"}]}`,
		"no id":     string(scanningMeta(t, scanningKey{id: "", priv: current.priv})),
		"rsa would": `{"public_keys":[{"key_identifier":"a","key":"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"}]}`,
	} {
		if _, err := ParseScanningKeys([]byte(doc)); err == nil {
			t.Errorf("ParseScanningKeys(%s) accepted", name)
		}
	}
}

func TestTokenHash(t *testing.T) {
	// FIPS 180-2's known answer for "abc".
	if got := TokenHash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("TokenHash(abc) = %q", got)
	}
}
