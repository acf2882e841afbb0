package kve_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
)

// Obviously fake keyring material, 32 bytes each.
var (
	testPepper  = []byte("pepper-FAKE-0123456789abcdef0123")
	testSealKey = []byte("sealkey-FAKE-0123456789abcdef012")
)

func newTestKeyring(t *testing.T, pepper, sealKey []byte) *kve.Keyring {
	t.Helper()
	k, err := kve.NewKeyring(pepper, sealKey)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return k
}

func TestKeyringHash(t *testing.T) {
	k := newTestKeyring(t, testPepper, testSealKey)

	// Known answer computed outside Go (Python's hmac with hashlib.sha256).
	const value = "kve_hb_dev_FAKE"
	const want = "3b0b4fb7f7b214cfb0c49f852098f50fe4024689339bb326e8cff9aa3b61c96f"
	if got := hex.EncodeToString(k.Hash(value)); got != want {
		t.Errorf("Hash(%q) = %s, want %s", value, got, want)
	}

	for _, v := range append([]string{"", "x", strings.Repeat("long", 1000)}, tokenVectors[0].value, tokenVectors[1].value) {
		m := hmac.New(sha256.New, testPepper)
		m.Write([]byte(v))
		if got, want := k.Hash(v), m.Sum(nil); !hmac.Equal(got, want) {
			t.Errorf("Hash of a %d-byte value is not HMAC-SHA256 under the pepper", len(v))
		}
	}

	other := newTestKeyring(t, []byte("pepper-FAKE-other-89abcdef012345"), testSealKey)
	if bytes.Equal(k.Hash(value), other.Hash(value)) {
		t.Error("two peppers give the same hash")
	}
	if bytes.Equal(k.Hash(value), k.Hash(value+"x")) {
		t.Error("two values give the same hash")
	}
}

// TestHasher: the proxy's Hasher computes the same lookup key as the
// Keyring built from the same pepper, and refuses a pepper of the wrong size.
func TestHasher(t *testing.T) {
	h, err := kve.NewHasher(testPepper)
	if err != nil {
		t.Fatalf("NewHasher: %v", err)
	}
	k := newTestKeyring(t, testPepper, testSealKey)
	for _, v := range []string{"", "kve_hb_dev_FAKE", tokenVectors[0].value} {
		if !hmac.Equal(h.Hash(v), k.Hash(v)) {
			t.Errorf("Hasher and Keyring disagree on a %d-byte value", len(v))
		}
	}
	if got, want := hex.EncodeToString(h.Hash("kve_hb_dev_FAKE")), "3b0b4fb7f7b214cfb0c49f852098f50fe4024689339bb326e8cff9aa3b61c96f"; got != want {
		t.Errorf("Hash = %s, want %s", got, want)
	}

	pepper := bytes.Clone(testPepper)
	h2, err := kve.NewHasher(pepper)
	if err != nil {
		t.Fatal(err)
	}
	clear(pepper)
	if !hmac.Equal(h2.Hash("x"), h.Hash("x")) {
		t.Error("changing the caller's pepper slice changed the hasher's hash")
	}

	for _, n := range []int{0, 16, 31, 33, 64} {
		if h, err := kve.NewHasher(make([]byte, n)); err == nil || h != nil {
			t.Errorf("NewHasher(%d bytes) = %v, %v; want nil and an error", n, h, err)
		}
	}
	if h, err := kve.NewHasher(nil); err == nil || h != nil {
		t.Errorf("NewHasher(nil) = %v, %v; want nil and an error", h, err)
	}
}

func TestKeyringKeepsItsOwnPepper(t *testing.T) {
	pepper := bytes.Clone(testPepper)
	k := newTestKeyring(t, pepper, testSealKey)
	before := k.Hash("kve_hb_dev_FAKE")
	clear(pepper)
	if !bytes.Equal(before, k.Hash("kve_hb_dev_FAKE")) {
		t.Error("changing the caller's pepper slice changed the keyring's hash")
	}
}

// TestHashIsNotAToken is T07: a stored MAC, in any encoding a DB dump might
// show, is refused as a token before any lookup.
func TestHashIsNotAToken(t *testing.T) {
	k := newTestKeyring(t, testPepper, testSealKey)
	for _, tc := range tokenVectors {
		mac := k.Hash(tc.value)
		hexMAC := hex.EncodeToString(mac)
		forms := map[string]string{
			"raw":               string(mac),
			"hex":               hexMAC,
			"base64":            base64.StdEncoding.EncodeToString(mac),
			"base64url":         base64.RawURLEncoding.EncodeToString(mac),
			"hex in token head": tc.value[:headLen] + hexMAC[:randomLen+checkLen],
		}
		for name, form := range forms {
			t.Run(tc.name+" "+name, func(t *testing.T) {
				if _, _, ok := kve.ParseTokenValue(form); ok {
					t.Error("a MAC was accepted as a token value")
				}
			})
		}
	}
}

func TestKeyringSealOpen(t *testing.T) {
	k := newTestKeyring(t, testPepper, testSealKey)
	plaintexts := map[string][]byte{
		"empty": {},
		"token": []byte(tokenVectors[0].value),
		"key":   []byte("sk-test-FAKE-0123456789"),
		"64 KB": bytes.Repeat([]byte("FAKE"), 16<<10),
	}
	for name, pt := range plaintexts {
		t.Run(name, func(t *testing.T) {
			sealed := k.Seal(pt, "tok_A")
			if len(pt) >= 8 && bytes.Contains(sealed, pt[:8]) {
				t.Error("the sealed value holds the plaintext")
			}
			got, err := k.Open(sealed, "tok_A")
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, pt) {
				t.Errorf("Open returned %d bytes, want the %d sealed", len(got), len(pt))
			}
			again := k.Seal(pt, "tok_A")
			if bytes.Equal(sealed, again) {
				t.Error("sealing twice gave the same bytes: the nonce is not fresh")
			}
		})
	}
}

func TestKeyringSealDoesNotAliasInput(t *testing.T) {
	k := newTestKeyring(t, testPepper, testSealKey)
	pt := []byte("sk-test-FAKE-0123456789")
	sealed := k.Seal(pt, "key_1")
	if string(pt) != "sk-test-FAKE-0123456789" {
		t.Fatal("Seal changed its input")
	}
	got, err := k.Open(sealed, "key_1")
	if err != nil {
		t.Fatal(err)
	}
	got[0] = 'X'
	if sealed2, _ := k.Open(sealed, "key_1"); string(sealed2) != "sk-test-FAKE-0123456789" {
		t.Error("changing an opened plaintext changed the sealed value")
	}
}

// TestKeyringOpenRefuses is T29: a ciphertext moved to another row, altered,
// cut short or opened under another key never opens.
func TestKeyringOpenRefuses(t *testing.T) {
	k := newTestKeyring(t, testPepper, testSealKey)
	pt := []byte(tokenVectors[0].value)
	sealed := k.Seal(pt, "org_A/tok_1")

	for _, aad := range []string{"org_B/tok_1", "org_A/tok_2", "", "org_A/tok_1 ", "ORG_A/TOK_1", "org_A/tok_"} {
		t.Run("aad "+aad, func(t *testing.T) {
			if got, err := k.Open(sealed, aad); err == nil || got != nil {
				t.Errorf("Open with another row's AAD = %d bytes, %v; want nil and an error", len(got), err)
			}
		})
	}

	t.Run("each byte flipped", func(t *testing.T) {
		for i := range sealed {
			bad := bytes.Clone(sealed)
			bad[i] ^= 0x01
			if got, err := k.Open(bad, "org_A/tok_1"); err == nil || got != nil {
				t.Errorf("Open with byte %d flipped = %d bytes, %v; want nil and an error", i, len(got), err)
			}
		}
	})

	t.Run("each truncation", func(t *testing.T) {
		for n := range len(sealed) {
			if got, err := k.Open(sealed[:n], "org_A/tok_1"); err == nil || got != nil {
				t.Errorf("Open of the first %d bytes = %d bytes, %v; want nil and an error", n, len(got), err)
			}
		}
	})

	t.Run("extra byte", func(t *testing.T) {
		if _, err := k.Open(append(bytes.Clone(sealed), 0), "org_A/tok_1"); err == nil {
			t.Error("Open accepted a sealed value with a byte appended")
		}
	})

	t.Run("nil", func(t *testing.T) {
		if _, err := k.Open(nil, "org_A/tok_1"); err == nil {
			t.Error("Open accepted nil")
		}
	})

	t.Run("wrong sealing key", func(t *testing.T) {
		other := newTestKeyring(t, testPepper, []byte("sealkey-FAKE-other-9abcdef012345"))
		if _, err := other.Open(sealed, "org_A/tok_1"); err == nil {
			t.Error("another sealing key opened the value")
		}
	})
}

func TestNewKeyringSizes(t *testing.T) {
	tests := []struct {
		name            string
		pepper, sealKey []byte
		wantErr         bool
	}{
		{"32 and 32", make([]byte, 32), make([]byte, 32), false},
		{"nil", nil, nil, true},
		{"empty", []byte{}, []byte{}, true},
		{"short pepper", make([]byte, 31), make([]byte, 32), true},
		{"long pepper", make([]byte, 33), make([]byte, 32), true},
		{"short sealing key", make([]byte, 32), make([]byte, 31), true},
		{"long sealing key", make([]byte, 32), make([]byte, 33), true},
		{"AES-128 sized sealing key", make([]byte, 32), make([]byte, 16), true},
		{"AES-192 sized sealing key", make([]byte, 32), make([]byte, 24), true},
		{"64-byte pepper", make([]byte, 64), make([]byte, 32), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := kve.NewKeyring(tc.pepper, tc.sealKey)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewKeyring(%d, %d bytes) error = %v, want error %v", len(tc.pepper), len(tc.sealKey), err, tc.wantErr)
			}
			if tc.wantErr && k != nil {
				t.Error("NewKeyring returned a keyring with its error")
			}
		})
	}
}
