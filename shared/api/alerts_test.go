package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
)

// newIncident records a breach incident of tokenID, as the proxy's
// detector would, and returns its id.
func newIncident(t *testing.T, a *apiTeam, tokenID string) string {
	t.Helper()
	now := a.Clock.Now()
	r := alerts.NewResponder(a.Store, nil, alerts.ResponderConfig{Now: a.Clock.Now})
	err := r.Handle(t.Context(), []alerts.Event{{Type: alerts.OriginNotAllowed, OrgID: a.Org.ID, TokenID: tokenID, At: now,
		RequestID: kve.NewID(kve.PrefixRequest, now), Origin: alerts.Sample("https://evil.example\n<b>"), IP: "203.0.113.9",
		UserAgent: "curl/8.5.0", Detail: "A browser request came from an origin that is not on the token's list."}})
	if err != nil {
		t.Fatal(err)
	}
	return alerts.IncidentID(a.Org.ID, tokenID, alerts.OriginNotAllowed)
}

// newSubscription subscribes https://hooks.example.invalid/<name> as p and
// returns its id.
func newSubscription(t *testing.T, a *apiTeam, p manage.Principal, name string) string {
	t.Helper()
	sub, err := a.Service.Subscribe(t.Context(), a.Org.ID, p, manage.SubscriptionInput{Protocol: "https",
		Endpoint: "https://hooks.example.invalid/" + name})
	if err != nil {
		t.Fatal(err)
	}
	return sub.ID
}

func TestAlertsAPI(t *testing.T) {
	a := newAPITeam(t)
	org := "/api/v1/orgs/" + a.Org.Slug
	rec := a.call(t, "POST", org+"/tokens", a.Owner.Token, `{"name":"web","key":"main","env":"prd","allow_server":true}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create token: %d %s", rec.Code, rec.Body)
	}
	tok := decodeBody[map[string]any](t, rec)
	if tok["alerts"] != true || tok["auto_suspend"] != true {
		t.Errorf("a prd token's alert defaults: %v, %v", tok["alerts"], tok["auto_suspend"])
	}
	id := newIncident(t, a, tok["id"].(string))

	rec = a.call(t, "GET", org+"/alerts?open=true", a.Admin.Token, "")
	page := decodeBody[struct {
		Items []map[string]any `json:"items"`
	}](t, rec)
	if rec.Code != http.StatusOK || len(page.Items) != 1 {
		t.Fatalf("alerts: %d %s", rec.Code, rec.Body)
	}
	inc := page.Items[0]
	if inc["id"] != id || inc["type"] != "origin_not_allowed" || inc["count"] != 1.0 ||
		inc["sample"].(map[string]any)["origin"] != `https://evil.example\u000a<b>` || inc["token"].(map[string]any)["name"] != "web" {
		t.Errorf("incident %v", inc)
	}
	if strings.Contains(rec.Body.String(), "<b>") {
		t.Errorf("markup from a sample reached the JSON unescaped: %s", rec.Body)
	}
	rec = a.call(t, "POST", org+"/alerts/"+id+"/ack", a.Admin.Token, "")
	if acked := decodeBody[map[string]any](t, rec); rec.Code != http.StatusOK || acked["acknowledged_by"] != a.Admin.ID {
		t.Errorf("ack: %d %s", rec.Code, rec.Body)
	}
	wantError(t, a.call(t, "POST", org+"/alerts/"+id+"/ack", a.Owner.Token, ""), http.StatusConflict, "incident_acknowledged")
	wantError(t, a.call(t, "POST", org+"/alerts/inc_nope/ack", a.Owner.Token, ""), http.StatusNotFound, "not_found")

	rec = a.call(t, "POST", org+"/alerts/subscriptions", a.Owner.Token,
		`{"protocol":"https","endpoint":"https://kve:hook-pass-FAKE@hooks.example.invalid/kve"}`)
	sub := decodeBody[map[string]any](t, rec)
	if rec.Code != http.StatusCreated || sub["confirmed"] != false || sub["endpoint"] != "https://kve:xxxxx@hooks.example.invalid/kve" {
		t.Errorf("subscribe: %d %s", rec.Code, rec.Body)
	}
	wantError(t, a.call(t, "POST", org+"/alerts/subscriptions", a.Owner.Token,
		`{"protocol":"https","endpoint":"https://kve:hook-pass-FAKE@hooks.example.invalid/kve"}`), http.StatusConflict, "conflict")
	wantError(t, a.call(t, "POST", org+"/alerts/subscriptions", a.Owner.Token, `{"protocol":"http","endpoint":"http://x.example"}`),
		http.StatusBadRequest, "invalid_endpoint")
	wantError(t, a.call(t, "POST", org+"/alerts/subscriptions", a.Owner.Token, `{"protocol":"https","endpoint":"https://x.example","org_id":"other"}`),
		http.StatusBadRequest, "unknown_field")
	rec = a.call(t, "GET", org+"/alerts/subscriptions", a.Owner.Token, "")
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "hook-pass-FAKE") {
		t.Errorf("subscriptions: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(a.Logs.String(), "hook-pass-FAKE") {
		t.Error("a webhook password reached the log")
	}
	if rec := a.call(t, "POST", org+"/alerts/test", a.Admin.Token, ""); rec.Code != http.StatusAccepted {
		t.Errorf("test alert: %d %s", rec.Code, rec.Body)
	}
	if rec := a.call(t, "DELETE", org+"/alerts/subscriptions/"+sub["id"].(string), a.Admin.Token, ""); rec.Code != http.StatusNoContent {
		t.Errorf("unsubscribe: %d %s", rec.Code, rec.Body)
	}

	rec = a.call(t, "PATCH", org+"/tokens/"+tok["id"].(string), a.Admin.Token, `{"suspended":true,"alerts":false}`)
	patched := decodeBody[map[string]any](t, rec)
	if rec.Code != http.StatusOK || patched["suspension"] != "manual" || patched["suspended_at"] == nil || patched["alerts"] != false {
		t.Errorf("suspend by PATCH: %d %s", rec.Code, rec.Body)
	}
}

func TestSecretScanningAPI(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal(map[string]any{"public_keys": []map[string]any{{"key_identifier": "k1",
		"key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}}})
	keys, err := alerts.ParseScanningKeys(meta)
	if err != nil {
		t.Fatal(err)
	}
	a := newAPITeam(t, func(c *manage.Config) { c.ScanningKeys = keys })
	it, err := a.Service.CreateToken(t.Context(), a.Org.ID, a.Principal(t, a.Owner, "192.0.2.1"),
		manage.TokenInput{Name: "web", Key: "main", Env: "prd", AllowServer: true})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal([]map[string]string{{"token": it.Value.Reveal(), "type": "kve_token",
		"url": "https://github.com/octo/app/blob/1/.env", "source": "content"}})
	sum := sha256.Sum256(body)
	sig, err := ecdsa.SignASN1(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	signed := func(id, sig string) func(*http.Request) {
		return func(r *http.Request) {
			r.Header.Set("Github-Public-Key-Identifier", id)
			r.Header.Set("Github-Public-Key-Signature", sig)
			r.Header.Set("Content-Type", "application/json")
		}
	}
	rec := a.call(t, "POST", "/api/v1/secret-scanning/github", "", string(body), signed("k1", base64.StdEncoding.EncodeToString(sig)))
	verdicts := decodeBody[[]map[string]string](t, rec)
	if rec.Code != http.StatusOK || len(verdicts) != 1 || verdicts[0]["label"] != "true_positive" ||
		verdicts[0]["token_hash"] != alerts.TokenHash(it.Value.Reveal()) {
		t.Fatalf("report: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), it.Value.Reveal()) || strings.Contains(a.Logs.String(), it.Value.Reveal()) {
		t.Error("the reported token's value was echoed or logged")
	}
	if got, _ := a.Store.Token(t.Context(), a.Org.ID, it.Token.ID); !got.Suspended() {
		t.Error("a leaked prd token was not suspended")
	}
	wantError(t, a.call(t, "POST", "/api/v1/secret-scanning/github", "", string(body)+" ",
		signed("k1", base64.StdEncoding.EncodeToString(sig))), http.StatusUnauthorized, "invalid_signature")
	wantError(t, a.call(t, "POST", "/api/v1/secret-scanning/github", "", string(body)), http.StatusUnauthorized, "invalid_signature")
}
