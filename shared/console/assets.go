package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed static
var staticFS embed.FS

// assets are the embedded static files, each served under a URL holding a
// hash of its content, /static/<hash>/<name>: a new build changes the URL of
// every file it changes, so browsers may cache them for a year.
type assets struct {
	files map[string]asset // by name
}

type asset struct {
	hash  string
	body  []byte
	ctype string
}

func loadAssets() *assets {
	a := &assets{files: map[string]asset{}}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := strings.TrimPrefix(p, "static/")
		a.files[name] = asset{hash: hex.EncodeToString(sum[:8]), body: body, ctype: contentTypes[path.Ext(name)]}
		return nil
	})
	if err != nil {
		panic(err)
	}
	return a
}

// contentTypes is fixed here rather than read from the system's MIME
// tables, which differ between a laptop and Lambda.
var contentTypes = map[string]string{
	".css": "text/css; charset=utf-8",
	".js":  "text/javascript; charset=utf-8",
	".svg": "image/svg+xml",
	".txt": "text/plain; charset=utf-8",
}

// url returns the hashed URL of a static file, for templates.
func (a *assets) url(name string) (string, error) {
	f, ok := a.files[name]
	if !ok {
		return "", fmt.Errorf("no static file %q", name)
	}
	return "/static/" + f.hash + "/" + name, nil
}

// static serves GET /static/{hash}/{name}. A hash that is not the current
// one is not found: serving today's file under another build's URL would
// let a cache keep the wrong file for a year.
func (s *server) static(w http.ResponseWriter, r *http.Request) {
	f, ok := s.assets.files[r.PathValue("name")]
	if !ok || r.PathValue("hash") != f.hash {
		s.fail(w, r, errNoPage)
		return
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(f.body)
	}
}
