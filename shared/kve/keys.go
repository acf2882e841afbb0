package kve

import (
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// Key is the reference to a real upstream key. Its value lives only in the
// secret store under Secret; kve shows this reference, never the value.
type Key struct {
	ID          string    `json:"id"`
	OrgID       string    `json:"org_id"`
	Name        string    `json:"name"`
	Provider    string    `json:"provider"`
	Upstream    string    `json:"upstream"`
	Auth        Auth      `json:"auth,omitzero"`
	Secret      string    `json:"secret_name"` // kve/<org-id>/keys/<key-id>
	Version     string    `json:"-"`           // current secret version
	Last4       string    `json:"last4"`
	Fingerprint string    `json:"fingerprint"`
	CreatedBy   string    `json:"created_by"`
	CreatedAt   time.Time `json:"created_at"`
	RotatedAt   time.Time `json:"rotated_at,omitzero"`
}

// Ref returns the snapshot of k that tokens carry.
func (k *Key) Ref() KeyRef {
	return KeyRef{ID: k.ID, Name: k.Name, Provider: k.Provider, Upstream: k.Upstream,
		Secret: k.Secret, Version: k.Version, Auth: k.Auth}
}

// SecretName is where a key's value lives in the secret store (DESIGN §3).
func SecretName(orgID, keyID string) string { return "kve/" + orgID + "/keys/" + keyID }

// Fingerprint identifies a key value without revealing it: the first 16 bytes
// of its SHA-256, enough to tell two keys apart or to match a provider's
// dashboard entry by last 4 and fingerprint together.
func Fingerprint(v Secret) string {
	sum := sha256.Sum256([]byte(v.Reveal()))
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:16])
}
