package web

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRemoteIP(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:51234":  "192.0.2.7",
		"[2001:db8::1]:80": "2001:db8::1",
		"192.0.2.8":        "192.0.2.8", // Lambda's adapter may give no port
		"":                 "",
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = addr
		r.Header.Set("X-Forwarded-For", "203.0.113.9")
		if got := RemoteIP(r); got != want {
			t.Errorf("RemoteIP(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestStatusWriter(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    int
	}{
		{"nothing written", func(http.ResponseWriter, *http.Request) {}, 0},
		{"body only", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }, 200},
		{"status", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(303) }, 303},
		{"the first status", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(404)
			w.WriteHeader(500) // net/http ignores it, and so does the log
			w.Write([]byte("x"))
		}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			sw := &StatusWriter{ResponseWriter: rec}
			tc.handler(sw, httptest.NewRequest("GET", "/", nil))
			if sw.Status != tc.want {
				t.Errorf("Status = %d, want %d", sw.Status, tc.want)
			}
			if http.NewResponseController(sw).Flush() != nil {
				t.Error("Flush does not reach the writer underneath")
			}
		})
	}
}
