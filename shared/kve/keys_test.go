package kve_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

func TestFingerprint(t *testing.T) {
	// Known answer computed outside Go: base64 (no padding) of the first 16
	// bytes of SHA-256("sk-test-FAKE-0123456789"), from Python's hashlib.
	const want = "SHA256:BU5cJnbib8AsnH7jQx5ksQ"
	v := kve.Secret("sk-test-FAKE-0123456789")
	got := kve.Fingerprint(v)
	if got != want {
		t.Errorf("Fingerprint = %q, want %q", got, want)
	}
	if strings.Contains(got, "6789") || strings.Contains(got, "FAKE") {
		t.Errorf("Fingerprint %q shows part of the value", got)
	}
	if kve.Fingerprint(kve.Secret("sk-test-FAKE-0123456780")) == got {
		t.Error("two values share a fingerprint")
	}
}

func TestSecretName(t *testing.T) {
	if got, want := kve.SecretName("org_1", "key_2"), "kve/org_1/keys/key_2"; got != want {
		t.Errorf("SecretName = %q, want %q", got, want)
	}
}

func TestKeyRef(t *testing.T) {
	k := kve.Key{
		ID: "key_1", OrgID: "org_1", Name: "stripe live", Provider: "stripe", Upstream: "https://api.stripe.com",
		Auth:   kve.Auth{Mode: kve.AuthBasic},
		Secret: "kve/org_1/keys/key_1", Version: "v-FAKE-2", Last4: "abcd", Fingerprint: "SHA256:x",
		CreatedBy: "usr_1", CreatedAt: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
	}
	want := kve.KeyRef{ID: "key_1", Name: "stripe live", Provider: "stripe", Upstream: "https://api.stripe.com",
		Secret: "kve/org_1/keys/key_1", Version: "v-FAKE-2", Auth: kve.Auth{Mode: kve.AuthBasic}}
	if diff := cmp.Diff(want, k.Ref()); diff != "" {
		t.Errorf("Ref (-want +got):\n%s", diff)
	}
}
