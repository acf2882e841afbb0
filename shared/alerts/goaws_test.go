package alerts

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyvault-edge/kve/shared/alerts/goaws"
	"github.com/keyvault-edge/kve/shared/alerts/snsverify"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// snsReceiver is an organization's webhook as a team would write it:
// snsverify's Handler, confirming its subscription and collecting alerts.
type snsReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	alerts []*snsverify.Message
	got    chan struct{}
}

// TestGoaws runs alerts.SNS against the goaws SNS emulator, end to end:
// two organizations subscribe a local receiver each (snsverify.Handler)
// through kve's SNS channel, with their filter policies; the receivers
// verify goaws's SubscriptionConfirmation and confirm; kve publishes one
// organization's incident, which arrives, verified, with its attributes.
//
// goaws v0.4.5 does not apply filter policies to http(s) subscriptions
// (gosns.publishHTTP calls no IsSatisfiedBy; only publishSQS does), so
// there every receiver gets every message, which real SNS would not do.
// The test says so in its log and tests the filter policies kve sends
// instead: it reads each back (GetSubscriptionAttributes), evaluates it
// against the delivered message's attributes with SNS's semantics, and
// subscribes an SQS queue per organization with the same policy, where
// goaws does filter: the second organization's queue gets nothing. goaws
// signs with SignatureVersion 1 (SHA1) only, which the receivers accept
// here (AllowSHA1); kve's topic signs with version 2.
func TestGoaws(t *testing.T) {
	g := goaws.Start(t, "org-a-alerts", "org-b-alerts")
	ctx := t.Context()
	ch, err := NewSNS(g.Client(), g.Topic, g.QueueARN("kve-alerts-dlq"))
	if err != nil {
		t.Fatal(err)
	}
	// The receivers are snsverify.Handler, trusting goaws's URL for the
	// certificate and the SubscribeURL (on AWS: the SNS domain, by
	// default) and accepting its SignatureVersion 1.
	v := &snsverify.Verifier{AllowSHA1: true, CertURLPrefixes: []string{g.URL + "/"}, TopicARNs: []string{g.Topic}}
	receivers := map[string]*snsReceiver{}
	for _, org := range []string{"org_a", "org_b"} {
		rc := &snsReceiver{got: make(chan struct{}, 10)}
		rc.Server = httptest.NewServer(snsverify.Handler(v, func(_ context.Context, m *snsverify.Message) error {
			rc.mu.Lock()
			rc.alerts = append(rc.alerts, m)
			rc.mu.Unlock()
			rc.got <- struct{}{}
			return nil
		}))
		t.Cleanup(rc.Close)
		receivers[org] = rc
	}

	subs := map[string]store.Subscription{}
	for _, org := range []string{"org_a", "org_b"} {
		sub, err := ch.Subscribe(ctx, store.Subscription{ID: "sub_" + org, OrgID: org, Protocol: "http", Endpoint: receivers[org].URL})
		if err != nil {
			t.Fatalf("subscribe %s: %v", org, err)
		}
		subs[org] = sub
		out, err := g.Client().GetSubscriptionAttributes(ctx, &sns.GetSubscriptionAttributesInput{SubscriptionArn: aws.String(sub.ARN)})
		if err != nil {
			t.Fatal(err)
		}
		if got := out.Attributes["FilterPolicy"]; got != FilterPolicy(org) {
			t.Errorf("%s: filter policy %q, want %q", org, got, FilterPolicy(org))
		}
		if ok, err := ch.Confirmed(ctx, sub); !ok || err != nil {
			t.Errorf("%s: confirmed %v, %v", org, ok, err)
		}
		// The same policy on an SQS subscription, where goaws filters.
		if _, err := g.Client().Subscribe(ctx, &sns.SubscribeInput{TopicArn: aws.String(g.Topic), Protocol: aws.String("sqs"),
			Endpoint:   aws.String(g.QueueARN(strings.ReplaceAll(org, "_", "-") + "-alerts")),
			Attributes: map[string]string{"FilterPolicy": FilterPolicy(org)}}); err != nil {
			t.Fatal(err)
		}
	}

	inc := store.Incident{ID: "inc_1", OrgID: "org_a", TokenID: "tok_1", TokenName: "checkout", Env: kve.EnvPrd,
		Type: string(OriginNotAllowed), Severity: SeverityMedium, Count: 10_000, Origin: "https://evil.example", IP: "203.0.113.9"}
	n, err := NewNotification(&inc, kve.Org{ID: "org_a", Slug: "acme"}, "https://kve.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(ctx, n); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case <-receivers["org_a"].got:
	case <-time.After(10 * time.Second):
		t.Fatal("org_a's receiver got no alert")
	}
	a := receivers["org_a"]
	a.mu.Lock()
	m := a.alerts[0]
	a.mu.Unlock()
	attrs := map[string]string{}
	for k, at := range m.MessageAttributes {
		attrs[k] = at.Value
	}
	var alert Alert
	if err := json.Unmarshal([]byte(m.Message), &alert); err != nil || alert.IncidentID != "inc_1" || alert.Count != 10_000 ||
		m.Subject != n.Subject || m.TopicArn != g.Topic {
		t.Errorf("delivered %+v (alert %+v, %v)", m, alert, err)
	}
	b := receivers["org_b"]
	b.mu.Lock()
	t.Logf("goaws delivered %d alert(s) to org_b's http receiver: it ignores filter policies on http subscriptions", len(b.alerts))
	b.mu.Unlock()
	for org, want := range map[string]bool{"org_a": true, "org_b": false} {
		if got := matches(t, FilterPolicy(org), attrs); got != want {
			t.Errorf("%s's filter policy on the delivered attributes %v: match %v, want %v", org, attrs, got, want)
		}
	}
	if got := g.Receive(t, "org-a-alerts"); len(got) != 1 || !strings.Contains(got[0], "inc_1") {
		t.Errorf("org_a's queue: %q, want the alert", got)
	}
	if got := g.Receive(t, "org-b-alerts"); len(got) != 0 {
		t.Errorf("org_b's queue: %q, want nothing: the filter policy excludes another organization's alerts", got)
	}
	for _, sub := range subs {
		if err := ch.Unsubscribe(ctx, sub); err != nil {
			t.Errorf("unsubscribe: %v", err)
		}
	}
	if err := ch.Unsubscribe(ctx, subs["org_a"]); err != nil {
		t.Errorf("unsubscribe twice: %v", err)
	}
}
