// Package secretstest is the conformance suite every secrets.Store passes:
// secrets.Local always, secrets.Manager against smtest's Secrets Manager.
package secretstest

import (
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/secrets"
)

// Run runs the suite; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) secrets.Store) {
	t.Run("PutThenValue", func(t *testing.T) { testPutThenValue(t, open(t)) })
	t.Run("NewVersionKeepsPrevious", func(t *testing.T) { testNewVersion(t, open(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, open(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, open(t)) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, open(t)) })
	t.Run("Invalid", func(t *testing.T) { testInvalid(t, open(t)) })
	t.Run("ConcurrentPuts", func(t *testing.T) { testConcurrentPuts(t, open(t)) })
}

const name = "kve/org_test/keys/key_test"

var tags = map[string]string{"kve:org": "org_test"}

func testPutThenValue(t *testing.T, s secrets.Store) {
	ctx := t.Context()
	value := kve.Secret("sk-test-FAKE-put-then-value")
	ver := put(t, s, name, value)
	if ver == "" {
		t.Fatal("Put returned an empty version")
	}
	wantValue(t, s, name, "", value)
	wantValue(t, s, name, ver, value)
	if _, err := s.Value(ctx, name+"-other", ""); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("Value of another name: got %v, want KindNotFound", err)
	}
}

func testNewVersion(t *testing.T, s secrets.Store) {
	v1 := kve.Secret("sk-test-FAKE-first")
	v2 := kve.Secret("sk-test-FAKE-second")
	ver1 := put(t, s, name, v1)
	ver2 := put(t, s, name, v2)
	if ver1 == ver2 {
		t.Fatalf("second Put returned the first version %q again", ver1)
	}
	wantValue(t, s, name, "", v2)
	wantValue(t, s, name, ver2, v2)
	wantValue(t, s, name, ver1, v1) // a token not yet moved to the new version still works
}

func testNotFound(t *testing.T, s secrets.Store) {
	ctx := t.Context()
	ver := put(t, s, name, "sk-test-FAKE-not-found")
	tests := []struct {
		name            string
		secret, version string
	}{
		{"unknown name", "kve/org_test/keys/key_missing", ""},
		{"unknown name with version", "kve/org_test/keys/key_missing", ver},
		{"unknown version", name, newVersionID()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := s.Value(ctx, tt.secret, tt.version)
			if kve.KindOf(err) != kve.KindNotFound {
				t.Fatalf("Value = %d bytes, %v; want KindNotFound", len(v), err)
			}
		})
	}
}

func testDelete(t *testing.T, s secrets.Store) {
	ctx := t.Context()
	ver1 := put(t, s, name, "sk-test-FAKE-delete-1")
	ver2 := put(t, s, name, "sk-test-FAKE-delete-2")
	other := put(t, s, name+"-kept", "sk-test-FAKE-kept")
	if err := s.Delete(ctx, name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, ver := range []string{"", ver1, ver2} {
		if _, err := s.Value(ctx, name, ver); kve.KindOf(err) != kve.KindNotFound {
			t.Errorf("Value(%q) after Delete: got %v, want KindNotFound", ver, err)
		}
	}
	if err := s.Delete(ctx, name); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("second Delete: got %v, want KindNotFound", err)
	}
	if err := s.Delete(ctx, "kve/org_test/keys/key_never"); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("Delete of an unknown name: got %v, want KindNotFound", err)
	}
	wantValue(t, s, name+"-kept", other, "sk-test-FAKE-kept")
}

func testRoundTrip(t *testing.T, s secrets.Store) {
	big := strings.Repeat("sk-test-FAKE-0123456789abcdef-", secrets.MaxValueSize/30+1)[:secrets.MaxValueSize]
	tests := []struct {
		name  string
		value kve.Secret
	}{
		{"ascii", "sk-test-FAKE-abcdefghijklmnopqrstuvwxyz0123456789"},
		{"unicode", "sk-test-FAKE-ключ-🔑-鍵-é\u00a0\u200b"},
		{"newlines and tabs", "sk-test-FAKE-line1\nline2\r\n\tindented\n"},
		{"json and quotes", `{"api_key":"sk-test-FAKE","note":"a \"quoted\" \\ value"}`},
		{"pem-like", "-----BEGIN FAKE KEY-----\nMIIFAKE+/=\n-----END FAKE KEY-----\n"},
		{"64 KiB", kve.Secret(big)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := fmt.Sprintf("%s-%d", name, i)
			ver := put(t, s, n, tt.value)
			wantValue(t, s, n, "", tt.value)
			wantValue(t, s, n, ver, tt.value)
		})
	}
}

func testInvalid(t *testing.T, s secrets.Store) {
	ctx := t.Context()
	tests := []struct {
		name   string
		secret string
		value  kve.Secret
	}{
		{"empty name", "", "sk-test-FAKE-valid"},
		{"name with space", "kve/org test/keys/k", "sk-test-FAKE-valid"},
		{"name too long", strings.Repeat("n", 513), "sk-test-FAKE-valid"},
		{"empty value", name, ""},
		{"value over 64 KiB", name, kve.Secret(strings.Repeat("x", secrets.MaxValueSize+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ver, err := s.Put(ctx, tt.secret, tt.value, nil)
			if kve.KindOf(err) != kve.KindInvalid {
				t.Fatalf("Put = %q, %v; want KindInvalid", ver, err)
			}
		})
	}
	if _, err := s.Value(ctx, name, ""); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("Value after rejected Puts: got %v, want KindNotFound", err)
	}
}

func testConcurrentPuts(t *testing.T, s secrets.Store) {
	ctx := t.Context()
	const n = 8
	type result struct {
		ver string
		err error
	}
	shared := make([]result, n)
	own := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := s.Put(ctx, name, value(i), tags)
			shared[i] = result{v, err}
		})
		wg.Go(func() {
			v, err := s.Put(ctx, fmt.Sprintf("%s-%d", name, i), value(i), tags)
			own[i] = result{v, err}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range n {
		if shared[i].err != nil || own[i].err != nil {
			t.Fatalf("Put %d: %v, %v", i, shared[i].err, own[i].err)
		}
		if seen[shared[i].ver] {
			t.Errorf("Put %d returned version %q twice", i, shared[i].ver)
		}
		seen[shared[i].ver] = true
		wantValue(t, s, fmt.Sprintf("%s-%d", name, i), "", value(i))
	}
	cur, err := s.Value(ctx, name, "")
	if err != nil {
		t.Fatalf("Value: %v", err)
	}
	found := false
	for i := range n {
		found = found || cur == value(i)
	}
	if !found {
		t.Error("current value is none of the values put")
	}
}

func value(i int) kve.Secret { return kve.Secret(fmt.Sprintf("sk-test-FAKE-concurrent-%d", i)) }

func put(t *testing.T, s secrets.Store, name string, value kve.Secret) string {
	t.Helper()
	ver, err := s.Put(t.Context(), name, value, tags)
	if err != nil {
		t.Fatalf("Put(%s): %v", name, err)
	}
	return ver
}

// wantValue compares revealed values; a mismatch reports lengths and a diff
// of fake test values only.
func wantValue(t *testing.T, s secrets.Store, name, version string, want kve.Secret) {
	t.Helper()
	got, err := s.Value(t.Context(), name, version)
	if err != nil {
		t.Fatalf("Value(%s, %q): %v", name, version, err)
	}
	if diff := cmp.Diff(want.Reveal(), got.Reveal()); diff != "" {
		t.Errorf("Value(%s, %q) (-want +got, %d vs %d bytes):\n%s", name, version, len(want.Reveal()), len(got.Reveal()), diff)
	}
}

// newVersionID returns a well-formed version id (a UUID, as both stores make)
// that no store has issued.
func newVersionID() string {
	var b [16]byte
	rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
