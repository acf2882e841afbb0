package secrets_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/secrets"
)

const fakeToken = "kve_hb_dev_FAKEFAKEFAKEFAKEFAKEFAKEFAKEFAKE000000"

func TestEnsureSystemThenKeyring(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l := openLocal(t, dir)
	if err := l.EnsureSystem(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{secrets.PepperName, secrets.SealName} {
		v, err := l.Value(ctx, name, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		raw, err := base64.StdEncoding.DecodeString(v.Reveal())
		if err != nil || len(raw) != 32 {
			t.Errorf("%s is not base64 of 32 bytes (%d bytes, %v)", name, len(raw), err)
		}
	}
	k1, err := secrets.Keyring(ctx, l, secrets.PepperName, secrets.SealName)
	if err != nil {
		t.Fatal(err)
	}

	// At the next start the secrets exist: EnsureSystem keeps them, so
	// token hashes and sealed token values stay valid across restarts.
	l = openLocal(t, dir)
	if err := l.EnsureSystem(ctx); err != nil {
		t.Fatal(err)
	}
	k2, err := secrets.Keyring(ctx, l, secrets.PepperName, secrets.SealName)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k1.Hash(fakeToken), k2.Hash(fakeToken)) {
		t.Error("the pepper changed across restarts")
	}
	if _, err := k2.Open(k1.Seal([]byte(fakeToken), "tok_a"), "tok_a"); err != nil {
		t.Errorf("the sealing key changed across restarts: %v", err)
	}
}

// TestKeyringDerivesSHA256 pins the derivation against the AWS store, where
// the stack generates the secrets as random strings.
func TestKeyringDerivesSHA256(t *testing.T) {
	ctx := t.Context()
	m, _ := newManager(t)
	const pepper = "FAKEpepperGeneratedByCdk0123456789abcdef"
	const seal = "FAKEsealGeneratedByCdk0123456789abcdefgh"
	if _, err := m.Put(ctx, "kve/system/pepper", pepper, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put(ctx, "kve/system/seal", seal, nil); err != nil {
		t.Fatal(err)
	}
	k, err := secrets.Keyring(ctx, m, "kve/system/pepper", "kve/system/seal")
	if err != nil {
		t.Fatal(err)
	}
	p, s := sha256.Sum256([]byte(pepper)), sha256.Sum256([]byte(seal))
	want, err := kve.NewKeyring(p[:], s[:])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(k.Hash(fakeToken), want.Hash(fakeToken)) {
		t.Error("pepper is not SHA-256 of the stored string")
	}
	if _, err := want.Open(k.Seal([]byte(fakeToken), "tok_a"), "tok_a"); err != nil {
		t.Errorf("sealing key is not SHA-256 of the stored string: %v", err)
	}
}

func TestKeyringErrors(t *testing.T) {
	ctx := t.Context()
	l := openLocal(t, t.TempDir())
	if _, err := l.Put(ctx, "kve/system/short", "FAKE-too-short", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.EnsureSystem(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		pepper, seal string
		kind         kve.Kind
		text         string
	}{
		{"missing pepper", "kve/system/none", secrets.SealName, kve.KindNotFound, "read pepper"},
		{"missing sealing key", secrets.PepperName, "kve/system/none", kve.KindNotFound, "read sealing key"},
		{"short pepper", "kve/system/short", secrets.SealName, kve.KindInternal, "shorter than 32 characters"},
		{"one secret for both", secrets.PepperName, secrets.PepperName, kve.KindInternal, "must be different secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := secrets.Keyring(ctx, l, tt.pepper, tt.seal)
			if k != nil || err == nil {
				t.Fatalf("Keyring = %v, %v; want an error", k, err)
			}
			if kve.KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got %q (kind %v), want kind %v and %q", err, kve.KindOf(err), tt.kind, tt.text)
			}
			if strings.Contains(err.Error(), "FAKE-too-short") {
				t.Error("error holds the secret value")
			}
		})
	}
}
