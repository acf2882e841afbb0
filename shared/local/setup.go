package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/web"
)

// setupCode is the one-time code that creates the first user. It lives in
// <data>/setup-code (mode 0600) until setup succeeds, then the file goes;
// the store refuses a second setup either way.
type setupCode struct {
	path string
}

// setupCode returns the code, creating and printing it while setup is not done.
func (m *Main) setupCode(ctx context.Context) (*setupCode, error) {
	sc := &setupCode{path: filepath.Join(m.Config.Data, "setup-code")}
	done, err := m.store.SetupDone(ctx)
	if err != nil {
		return nil, fmt.Errorf("read setup state: %w", err)
	}
	if done {
		os.Remove(sc.path)
		return sc, nil
	}
	code, err := os.ReadFile(sc.path)
	if errors.Is(err, os.ErrNotExist) {
		code = []byte(newSetupCode())
		err = os.WriteFile(sc.path, append(code, '\n'), 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("setup code: %w", err)
	}
	fmt.Fprintf(m.Stdout, "\nkve is not set up yet. One-time setup code: %s\n(also in %s)\n"+
		"Create the first owner at %s/setup or with POST %s/api/v1/setup.\n\n",
		bytes.TrimSpace(code), sc.path, m.Config.PublicURL, m.Config.PublicURL)
	return sc, nil
}

// read returns the current code; an empty secret once setup is done.
func (sc *setupCode) read(context.Context) (kve.Secret, error) {
	b, err := os.ReadFile(sc.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return kve.Secret(strings.TrimSpace(string(b))), nil
}

// removeOnSetup deletes the code file once a setup request succeeded,
// through the API or the dashboard (which redirects on success).
func (sc *setupCode) removeOnSetup(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/setup" && r.URL.Path != "/setup" {
			next.ServeHTTP(w, r)
			return
		}
		rec := &web.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		done := rec.Status/100 == 2
		if r.URL.Path == "/setup" { // the dashboard re-renders its form on errors
			done = rec.Status == http.StatusSeeOther
		}
		if done {
			os.Remove(sc.path)
		}
	})
}

// newSetupCode returns 100 bits as five groups of four base32 characters.
func newSetupCode() string {
	const alphabet = "ABCDEFGHJKMNPQRSTVWXYZ0123456789" // no I, L, O, U
	b := make([]byte, 20)
	rand.Read(b)
	var s strings.Builder
	for i, c := range b {
		if i > 0 && i%4 == 0 {
			s.WriteByte('-')
		}
		s.WriteByte(alphabet[c%32])
	}
	return s.String()
}
