package secrets_test

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/secrets/secretstest"
)

func TestLocalConformance(t *testing.T) {
	secretstest.Run(t, func(t *testing.T) secrets.Store { return openLocal(t, t.TempDir()) })
}

func openLocal(t *testing.T, dir string) *secrets.Local {
	t.Helper()
	l, err := secrets.OpenLocal(dir)
	if err != nil {
		t.Fatalf("OpenLocal: %v", err)
	}
	return l
}

func TestOpenLocalCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".kve-local")
	l := openLocal(t, dir)
	if _, err := l.Put(t.Context(), "kve/org_a/keys/key_a", "sk-test-FAKE-files", nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		mode os.FileMode
		size int64 // -1: any
	}{
		{dir, 0o700 | os.ModeDir, -1},
		{filepath.Join(dir, "master.key"), 0o600, 32},
		{filepath.Join(dir, "secrets.sealed"), 0o600, -1},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			fi, err := os.Stat(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode() != tt.mode {
				t.Errorf("mode = %v, want %v", fi.Mode(), tt.mode)
			}
			if tt.size >= 0 && fi.Size() != tt.size {
				t.Errorf("size = %d, want %d", fi.Size(), tt.size)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"master.key", "secrets.sealed"}, names); diff != "" {
		t.Errorf("directory holds leftover files (-want +got):\n%s", diff)
	}
}

func TestLocalPersists(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l := openLocal(t, dir)
	const kept, gone = "kve/org_a/keys/key_kept", "kve/org_a/keys/key_gone"
	ver1, err := l.Put(ctx, kept, "sk-test-FAKE-persist-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	ver2, err := l.Put(ctx, kept, "sk-test-FAKE-persist-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Put(ctx, gone, "sk-test-FAKE-gone", nil); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, gone); err != nil {
		t.Fatal(err)
	}

	l = openLocal(t, dir)
	tests := []struct {
		name, secret, version string
		want                  kve.Secret
		kind                  kve.Kind
	}{
		{"current", kept, "", "sk-test-FAKE-persist-2", 0},
		{"current by id", kept, ver2, "sk-test-FAKE-persist-2", 0},
		{"previous by id", kept, ver1, "sk-test-FAKE-persist-1", 0},
		{"deleted", gone, "", "", kve.KindNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Value(ctx, tt.secret, tt.version)
			if tt.kind != 0 {
				if kve.KindOf(err) != tt.kind {
					t.Fatalf("Value: got %v, want %v", err, tt.kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Reveal() != tt.want.Reveal() {
				t.Errorf("Value = %q, want %q", got.Reveal(), tt.want.Reveal())
			}
		})
	}
}

func TestLocalKeepsCurrentAndPrevious(t *testing.T) {
	ctx := t.Context()
	l := openLocal(t, t.TempDir())
	const name = "kve/org_a/keys/key_rotated"
	var vers []string
	for _, v := range []kve.Secret{"sk-test-FAKE-v1", "sk-test-FAKE-v2", "sk-test-FAKE-v3"} {
		ver, err := l.Put(ctx, name, v, nil)
		if err != nil {
			t.Fatal(err)
		}
		vers = append(vers, ver)
	}
	if _, err := l.Value(ctx, name, vers[0]); kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("Value of the pruned version: got %v, want KindNotFound", err)
	}
	for i, want := range map[int]string{1: "sk-test-FAKE-v2", 2: "sk-test-FAKE-v3"} {
		got, err := l.Value(ctx, name, vers[i])
		if err != nil || got.Reveal() != want {
			t.Errorf("Value(version %d) = %q, %v; want %q", i+1, got.Reveal(), err, want)
		}
	}
}

func TestOpenLocalRefusesWhatItCannotOpen(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, dir string)
		want    string
	}{
		{"other master key", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "master.key"), randomBytes(32))
		}, "master key does not open " + "DIR/secrets.sealed"},
		{"master key too short", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "master.key"), randomBytes(31))
		}, "master key DIR/master.key is 31 bytes, want 32"},
		{"master key too long", func(t *testing.T, dir string) {
			key := readFile(t, filepath.Join(dir, "master.key"))
			writeFile(t, filepath.Join(dir, "master.key"), append(key, '\n'))
		}, "master key DIR/master.key is 33 bytes, want 32"},
		{"master key missing", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "master.key")); err != nil {
				t.Fatal(err)
			}
		}, "master key DIR/master.key is missing for DIR/secrets.sealed"},
		{"flipped byte", func(t *testing.T, dir string) {
			data := readFile(t, filepath.Join(dir, "secrets.sealed"))
			data[len(data)/2] ^= 0x01
			writeFile(t, filepath.Join(dir, "secrets.sealed"), data)
		}, "master key does not open DIR/secrets.sealed"},
		{"truncated", func(t *testing.T, dir string) {
			data := readFile(t, filepath.Join(dir, "secrets.sealed"))
			writeFile(t, filepath.Join(dir, "secrets.sealed"), data[:20])
		}, "master key does not open DIR/secrets.sealed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openLocal(t, dir)
			if _, err := l.Put(t.Context(), "kve/org_a/keys/key_a", "sk-test-FAKE-sealed", nil); err != nil {
				t.Fatal(err)
			}
			tt.corrupt(t, dir)
			corrupted := readFile(t, filepath.Join(dir, "secrets.sealed"))

			l, err := secrets.OpenLocal(dir)
			if l != nil || !errors.Is(err, secrets.ErrSealed) {
				t.Fatalf("OpenLocal = %v, %v; want an ErrSealed error", l, err)
			}
			want := "sealed: " + strings.ReplaceAll(tt.want, "DIR", dir)
			if err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if strings.Contains(err.Error(), "sk-test-FAKE") {
				t.Error("error holds the secret value")
			}
			if after := readFile(t, filepath.Join(dir, "secrets.sealed")); string(after) != string(corrupted) {
				t.Error("a refused OpenLocal rewrote the sealed file")
			}
		})
	}
}

func TestLocalDeleteUnknown(t *testing.T) {
	l := openLocal(t, t.TempDir())
	err := l.Delete(t.Context(), "kve/org_a/keys/key_none")
	if kve.KindOf(err) != kve.KindNotFound {
		t.Errorf("Delete: got %v, want KindNotFound", err)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
