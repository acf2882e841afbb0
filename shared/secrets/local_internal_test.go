package secrets

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// openSealed opens dir's sealed file the way an attacker holding the master
// key would, independently of Local, to check what is really on disk.
func openSealed(t *testing.T, dir, aad string) ([]byte, error) {
	t.Helper()
	key, err := os.ReadFile(filepath.Join(dir, masterKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, sealedFile))
	if err != nil {
		t.Fatal(err)
	}
	n := aead.NonceSize()
	return aead.Open(nil, data[:n], data[n:], []byte(aad))
}

func TestSealedFileFormat(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	const name = "kve/org_a/keys/key_a"
	const canary = "sk-test-FAKE-CANARY-on-disk"
	tags := map[string]string{"kve:org": "org_a", "kve:provider": "openai"}
	ver1, err := l.Put(ctx, name, canary, tags)
	if err != nil {
		t.Fatal(err)
	}
	ver2, err := l.Put(ctx, name, canary+"-2", map[string]string{"ignored": "on later versions"})
	if err != nil {
		t.Fatal(err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, sealedFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(canary)) || bytes.Contains(raw, []byte("org_a")) {
		t.Error("the sealed file holds plaintext")
	}
	if _, err := openSealed(t, dir, "kve-other-v1"); err == nil {
		t.Error("the sealed file opens under another AAD")
	}
	plain, err := openSealed(t, dir, "kve-local-secrets-v1")
	if err != nil {
		t.Fatalf("open sealed file: %v", err)
	}
	var doc sealedDoc
	if err := json.Unmarshal(plain, &doc); err != nil {
		t.Fatal(err)
	}
	want := sealedDoc{Secrets: map[string]*record{name: {
		Tags:     tags,
		Versions: []version{{ID: ver1, Value: canary}, {ID: ver2, Value: canary + "-2"}},
	}}}
	if diff := cmp.Diff(want, doc); diff != "" {
		t.Errorf("sealed document (-want +got):\n%s", diff)
	}
}

func TestOpenLocalRefusesSealedNonDocument(t *testing.T) {
	dir := t.TempDir()
	key, err := loadMasterKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeSealed(aead, dir, []byte("not a JSON document")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenLocal(dir); !errors.Is(err, ErrSealed) {
		t.Errorf("OpenLocal: got %v, want ErrSealed", err)
	}
}

func TestLocalRollsBackWhenWriteFails(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	const name = "kve/org_a/keys/key_a"
	ver, err := l.Put(ctx, name, "sk-test-FAKE-before", nil)
	if err != nil {
		t.Fatal(err)
	}
	l.dir = filepath.Join(dir, "gone") // every write now fails

	if _, err := l.Put(ctx, name, "sk-test-FAKE-after", nil); err == nil {
		t.Fatal("Put succeeded without writing")
	}
	if _, err := l.Put(ctx, name+"-new", "sk-test-FAKE-new", nil); err == nil {
		t.Fatal("Put of a new name succeeded without writing")
	}
	if err := l.Delete(ctx, name); err == nil {
		t.Fatal("Delete succeeded without writing")
	}
	if err := l.EnsureSystem(ctx); err == nil {
		t.Fatal("EnsureSystem succeeded without writing")
	}
	got, err := l.Value(ctx, name, "")
	if err != nil || got.Reveal() != "sk-test-FAKE-before" {
		t.Errorf("Value = %q, %v; want the value before the failed writes", got.Reveal(), err)
	}
	if got, err := l.Value(ctx, name, ver); err != nil || got.Reveal() != "sk-test-FAKE-before" {
		t.Errorf("Value(ver) = %q, %v", got.Reveal(), err)
	}
	for _, n := range []string{name + "-new", PepperName, SealName} {
		if _, err := l.Value(ctx, n, ""); kve.KindOf(err) != kve.KindNotFound {
			t.Errorf("Value(%s) after a failed write: got %v, want KindNotFound", n, err)
		}
	}
}
