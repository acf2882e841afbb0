package deploy_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/alerts/goaws"
	"github.com/keyvault-edge/kve/shared/alerts/snsverify"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/lambdahttp/rie"
	"github.com/keyvault-edge/kve/shared/store"
)

// TestProxyFunctionAlerts runs the AWS path of a breach alert end to end:
// the proxy function binary under the Lambda runtime emulator refuses a
// revoked token, detects the breach within the invocation, records the
// incident in DynamoDB (minidyn) and publishes it to the SNS topic (the
// goaws emulator, reached through AWS_ENDPOINT_URL_SNS), which delivers
// it to the organization's webhook.
func TestProxyFunctionAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the Lambda function")
	}
	g := goaws.Start(t)
	e := newAWSEnv(t)
	var calls atomic.Int64
	up := fakeOpenAI(t, &calls)
	token, tok := e.seed(t, up.URL, func(t *kve.Token) { t.Alerts, t.RevokedAt = true, time.Now() })

	got := make(chan *snsverify.Message, 10)
	v := &snsverify.Verifier{AllowSHA1: true, CertURLPrefixes: []string{g.URL + "/"}, TopicARNs: []string{g.Topic}}
	hook := httptest.NewServer(snsverify.Handler(v, func(_ context.Context, m *snsverify.Message) error {
		got <- m
		return nil
	}))
	t.Cleanup(hook.Close)
	ch, err := alerts.NewSNS(g.Client(), g.Topic, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Subscribe(t.Context(), store.Subscription{ID: "sub_1", OrgID: tok.OrgID, Protocol: "http", Endpoint: hook.URL}); err != nil {
		t.Fatal(err)
	}

	env := append(slices.Clone(e.env), "AWS_ENDPOINT_URL_SNS="+g.URL, "KVE_ALERT_TOPIC_ARN="+g.Topic)
	fn := rie.Start(t, bootstrap(t, "proxy"), env...)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	raw, err := fn.Invoke(ctx, fixture(t, "proxy-chat.json", token))
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, raw)
	}
	if res := parseStreamed(t, raw); res.StatusCode != 401 || calls.Load() != 0 {
		t.Fatalf("revoked token: %d %q, %d upstream calls", res.StatusCode, res.Body, calls.Load())
	}
	select {
	case m := <-got:
		var a alerts.Alert
		if err := json.Unmarshal([]byte(m.Message), &a); err != nil || a.Type != alerts.RevokedTokenUsed ||
			a.Token == nil || a.Token.ID != tok.ID || a.Org.ID != tok.OrgID || m.MessageAttributes["org"].Value != tok.OrgID {
			t.Errorf("alert %+v (%v), attributes %v", a, err, m.MessageAttributes)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no alert reached the webhook\n%s", fn.Output())
	}
	inc, err := e.store.Incident(t.Context(), tok.OrgID, alerts.IncidentID(tok.OrgID, tok.ID, alerts.RevokedTokenUsed))
	if err != nil || inc.Count != 1 || inc.NotifiedAt.IsZero() {
		t.Errorf("incident in DynamoDB: %+v, %v", inc, err)
	}
}
