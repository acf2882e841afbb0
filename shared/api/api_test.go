package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

// apiTeam is a managetest.Team behind the API handler.
type apiTeam struct {
	*managetest.Team
	srv *server
}

func newAPITeam(t *testing.T, configure ...func(*manage.Config)) *apiTeam {
	t.Helper()
	tm := managetest.NewTeam(t, configure...)
	return &apiTeam{Team: tm, srv: New(tm.Service, Config{Logger: tm.Logs.Logger()}).(*server)}
}

// call sends a request to the team's handler; see send.
func (a *apiTeam) call(t *testing.T, method, path string, cred kve.Secret, body string, opts ...func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	return send(t, a.srv, method, path, cred, body, opts...)
}

// send sends a request to h as from 192.0.2.1 (or the address an option
// sets), with cred as a bearer token unless it is empty.
func send(t *testing.T, h http.Handler, method, path string, cred kve.Secret, body string, opts ...func(*http.Request)) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.RemoteAddr = "192.0.2.1:40000"
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred.Reveal())
	}
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func from(ip string) func(*http.Request) {
	return func(r *http.Request) { r.RemoteAddr = ip + ":40000" }
}

func decodeBody[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("response %d is not JSON: %v\n%s", rec.Code, err, rec.Body)
	}
	return v
}

// wantError checks an error answer: status, code and the error shape.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	var body map[string]map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body) != 1 || len(body["error"]) != 2 || body["error"]["message"] == "" {
		t.Fatalf("error body = %s, want {\"error\":{\"code\",\"message\"}}", rec.Body)
	}
	if code != "" && body["error"]["code"] != code {
		t.Errorf("error code = %q, want %q (message %q)", body["error"]["code"], code, body["error"]["message"])
	}
}

// jsonOf marshals v for a request body; the tests build bodies from plain
// strings, never from kve.Secret, which would marshal as "[redacted]".
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
