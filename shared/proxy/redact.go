package proxy

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyvault-edge/kve/shared/kve"
)

// maxErrorBody is the most of an upstream error body kve reads to redact.
const maxErrorBody = 1 << 20

const redactedKey = "[redacted by kve]"

// keyForms are the shapes in which an upstream may echo a key: as sent, URL
// encoded (Gemini puts ?key= in error URLs), or base64 (HTTP basic).
func keyForms(key kve.Secret) []string {
	v := key.Reveal()
	if len(v) < 8 {
		return nil // too short to search for without mangling ordinary text
	}
	forms := []string{v}
	if e := queryEscapedKey(v); e != v {
		forms = append(forms, e)
	}
	return append(forms, base64.StdEncoding.EncodeToString([]byte(v)))
}

// redactHeaders replaces a key echoed in any response header.
// Every form is at least as long as the key, so the forms are built only
// when a value is long enough to hold one: most responses never need them.
func redactHeaders(h http.Header, key kve.Secret) {
	shortest := len(key.Reveal())
	var forms []string
	for name, vs := range h {
		for i, v := range vs {
			if len(v) < shortest {
				continue
			}
			if forms == nil {
				forms = keyForms(key)
			}
			for _, f := range forms {
				if strings.Contains(v, f) {
					v = strings.ReplaceAll(v, f, redactedKey)
					h[name][i] = v
				}
			}
		}
	}
}

// redactBody reads an upstream error body (bounded) and replaces any echo of
// the key before the client or a log sees it (SECURITY T26). Error bodies
// are small; a success body is never buffered.
func redactBody(res *http.Response, key kve.Secret) error {
	var r io.Reader = res.Body
	switch enc := strings.ToLower(res.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(res.Body)
		if err != nil {
			res.Body.Close()
			return err
		}
		r = zr
	default:
		r = strings.NewReader("") // unreadable here: replaced below
	}
	body, err := io.ReadAll(io.LimitReader(r, maxErrorBody+1))
	res.Body.Close()
	if err != nil {
		return err
	}
	if len(body) > maxErrorBody || len(body) == 0 && res.Header.Get("Content-Encoding") != "" {
		// Too large or in an encoding kve cannot read: do not pass on
		// what might hold the key.
		body = []byte(`{"error":{"message":"The upstream error body could not be checked for secrets and was withheld.","type":"kve_error","code":"upstream_unavailable"}}`)
		res.Header.Set("Content-Type", "application/json")
	}
	for _, f := range keyForms(key) {
		body = bytes.ReplaceAll(body, []byte(f), []byte(redactedKey))
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	res.Header.Del("Content-Encoding")
	return nil
}
