package local_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyvault-edge/kve/shared/local"
	"github.com/keyvault-edge/kve/shared/secrets"
)

// TestWrongMasterKey (SECURITY T29, class c5): local mode refuses to start
// on a data directory whose master key does not open its sealed secrets —
// it never serves with garbage — and leaves the sealed file as it was.
func TestWrongMasterKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	open := func() error {
		cfg, err := local.ParseConfig([]string{"--data", dir}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		m := &local.Main{Config: cfg, Stdout: io.Discard, Logger: slog.New(slog.DiscardHandler)}
		err = m.Open(t.Context())
		if cerr := m.Close(context.Background()); err == nil && cerr != nil {
			t.Fatalf("close: %v", cerr)
		}
		return err
	}
	if err := open(); err != nil {
		t.Fatalf("first start: %v", err)
	}
	sealed, err := os.ReadFile(filepath.Join(dir, "secrets.sealed"))
	if err != nil {
		t.Fatal(err)
	}
	other := make([]byte, 32)
	rand.Read(other)
	if err := os.WriteFile(filepath.Join(dir, "master.key"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := open(); !errors.Is(err, secrets.ErrSealed) {
		t.Fatalf("start with another master key: %v, want an error wrapping secrets.ErrSealed", err)
	}
	after, err := os.ReadFile(filepath.Join(dir, "secrets.sealed"))
	if err != nil || !bytes.Equal(after, sealed) {
		t.Errorf("the sealed file changed (%v)", err)
	}
}
