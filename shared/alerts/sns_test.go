package alerts

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
)

// snsServer speaks enough of SNS's query protocol (form-encoded POST,
// XML answers) for the real SDK client, and keeps every call's form.
type snsServer struct {
	*httptest.Server
	mu      sync.Mutex
	calls   map[string][]url.Values // by Action
	pending string                  // PendingConfirmation to answer
	fail    map[string]string       // Action → error code to answer with
}

func newSNSServer(t *testing.T) (*snsServer, *sns.Client) {
	t.Helper()
	s := &snsServer{calls: map[string][]url.Values{}, pending: "true", fail: map[string]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		action := r.PostForm.Get("Action")
		s.mu.Lock()
		s.calls[action] = append(s.calls[action], r.PostForm)
		code, pending := s.fail[action], s.pending
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		if code != "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>%s</Code><Message>refused</Message></Error><RequestId>r1</RequestId></ErrorResponse>`, code)
			return
		}
		var result string
		switch action {
		case "Subscribe":
			result = `<SubscriptionArn>` + r.PostForm.Get("TopicArn") + `:4f3b2a10-0000-4000-8000-000000000001</SubscriptionArn>`
		case "Publish":
			result = `<MessageId>94f20ce6-13c5-43a0-9a9e-ca52d816e90b</MessageId>`
		case "GetSubscriptionAttributes":
			result = `<Attributes><entry><key>PendingConfirmation</key><value>` + pending + `</value></entry></Attributes>`
		}
		fmt.Fprintf(w, `<%sResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><%sResult>%s</%sResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></%sResponse>`,
			action, action, result, action, action)
	}))
	t.Cleanup(s.Close)
	client := sns.New(sns.Options{
		Region:       "us-east-2",
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE0000000000", "secret-FAKE-0000000000", ""),
	})
	return s, client
}

func (s *snsServer) last(t *testing.T, action string) url.Values {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.calls[action]
	if len(cs) == 0 {
		t.Fatalf("no %s call", action)
	}
	return cs[len(cs)-1]
}

// entries reads a query-protocol map (prefix.entry.N.key/value or
// prefix.entry.N.Name/Value.StringValue).
func entries(form url.Values, prefix, key, value string) map[string]string {
	out := map[string]string{}
	for i := 1; ; i++ {
		k := form.Get(fmt.Sprintf("%s.entry.%d.%s", prefix, i, key))
		if k == "" {
			return out
		}
		out[k] = form.Get(fmt.Sprintf("%s.entry.%d.%s", prefix, i, value))
	}
}

const (
	testTopic = "arn:aws:sns:us-east-2:111122223333:kve-alerts"
	testDLQ   = "arn:aws:sqs:us-east-2:111122223333:kve-AlertDeadLetterQueue-1"
)

func TestSNSSubscribe(t *testing.T) {
	for _, tt := range []struct {
		name string
		dlq  string
		want map[string]string
	}{
		{"with dead-letter queue", testDLQ, map[string]string{"FilterPolicy": `{"org":["org_1"]}`,
			"FilterPolicyScope": "MessageAttributes", "RedrivePolicy": `{"deadLetterTargetArn":"` + testDLQ + `"}`}},
		{"without", "", map[string]string{"FilterPolicy": `{"org":["org_1"]}`, "FilterPolicyScope": "MessageAttributes"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, client := newSNSServer(t)
			ch, err := NewSNS(client, testTopic, tt.dlq)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := ch.Subscribe(t.Context(), store.Subscription{ID: "sub_1", OrgID: "org_1", Protocol: "https", Endpoint: "https://hooks.example.test/kve"})
			if err != nil {
				t.Fatal(err)
			}
			if sub.ARN != testTopic+":4f3b2a10-0000-4000-8000-000000000001" {
				t.Errorf("ARN %q", sub.ARN)
			}
			form := srv.last(t, "Subscribe")
			if form.Get("TopicArn") != testTopic || form.Get("Protocol") != "https" || form.Get("Endpoint") != "https://hooks.example.test/kve" ||
				form.Get("ReturnSubscriptionArn") != "true" {
				t.Errorf("Subscribe form %v", form)
			}
			if diff := cmp.Diff(tt.want, entries(form, "Attributes", "key", "value")); diff != "" {
				t.Errorf("attributes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSNSPublish(t *testing.T) {
	srv, client := newSNSServer(t)
	ch, err := NewSNS(client, testTopic, "")
	if err != nil {
		t.Fatal(err)
	}
	inc := store.Incident{ID: "inc_1", OrgID: "org_1", TokenID: "tok_1", TokenName: "web", Env: kve.EnvPrd, Type: string(UsageSpike),
		Severity: SeverityHigh, Count: 3}
	n, err := NewNotification(&inc, kve.Org{ID: "org_1", Slug: "acme"}, "https://kve.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish(t.Context(), n); err != nil {
		t.Fatal(err)
	}
	form := srv.last(t, "Publish")
	if form.Get("Message") != string(n.Message) || form.Get("Subject") != n.Subject || form.Get("TopicArn") != testTopic {
		t.Errorf("Publish form %v", form)
	}
	want := map[string]string{"org": "org_1", "type": "usage_spike", "environment": "prd", "severity": "high"}
	if diff := cmp.Diff(want, entries(form, "MessageAttributes", "Name", "Value.StringValue")); diff != "" {
		t.Errorf("message attributes (-want +got):\n%s", diff)
	}
	for i := 1; i <= 4; i++ {
		if dt := form.Get(fmt.Sprintf("MessageAttributes.entry.%d.Value.DataType", i)); dt != "String" {
			t.Errorf("attribute %d data type %q", i, dt)
		}
	}
}

func TestSNSConfirmedAndErrors(t *testing.T) {
	srv, client := newSNSServer(t)
	ch, _ := NewSNS(client, testTopic, "")
	sub := store.Subscription{OrgID: "org_1", ARN: testTopic + ":1"}
	ctx := t.Context()
	if ok, err := ch.Confirmed(ctx, sub); ok || err != nil {
		t.Errorf("pending: %v, %v", ok, err)
	}
	srv.mu.Lock()
	srv.pending = "false"
	srv.mu.Unlock()
	if ok, err := ch.Confirmed(ctx, sub); !ok || err != nil {
		t.Errorf("confirmed: %v, %v", ok, err)
	}
	srv.mu.Lock()
	srv.fail = map[string]string{"GetSubscriptionAttributes": "NotFound", "Unsubscribe": "NotFound", "Subscribe": "InvalidParameter",
		"Publish": "Throttled"}
	srv.mu.Unlock()
	if ok, err := ch.Confirmed(ctx, sub); ok || err != nil {
		t.Errorf("unknown subscription: %v, %v; want not confirmed", ok, err)
	}
	if err := ch.Unsubscribe(ctx, sub); err != nil {
		t.Errorf("Unsubscribe of an unknown subscription: %v", err)
	}
	if _, err := ch.Subscribe(ctx, store.Subscription{OrgID: "org_1", Protocol: "https", Endpoint: "https://x.example.test"}); kve.KindOf(err) != kve.KindInvalid {
		t.Errorf("refused endpoint: %v, want KindInvalid", err)
	}
	if err := ch.Publish(ctx, Notification{OrgID: "org_1", Message: []byte("{}")}); kve.KindOf(err) != kve.KindUnavailable {
		t.Errorf("throttled publish: %v, want KindUnavailable", err)
	}
}

func TestTopicRegion(t *testing.T) {
	for _, tt := range []struct {
		arn, want string
	}{
		{testTopic, "us-east-2"},
		{"arn:aws-cn:sns:cn-north-1:111122223333:kve-alerts", "cn-north-1"},
		{"arn:aws:sqs:us-east-2:111122223333:kve-alerts", ""},
		{"arn:aws:sns::111122223333:kve-alerts", ""},
		{"kve-alerts", ""},
	} {
		got, err := TopicRegion(tt.arn)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("TopicRegion(%q) = %q, %v", tt.arn, got, err)
		}
	}
	if _, err := NewSNS(nil, "not an arn", ""); err == nil {
		t.Error("NewSNS accepted a bad topic ARN")
	}
}

// matches is SNS's exact-string filter policy semantics (what kve's
// policies use): every key of the policy must be an attribute whose value
// is one of the key's values.
func matches(t *testing.T, policy string, attrs map[string]string) bool {
	t.Helper()
	var p map[string][]string
	if err := json.Unmarshal([]byte(policy), &p); err != nil {
		t.Fatalf("filter policy %q: %v", policy, err)
	}
	for k, values := range p {
		v, ok := attrs[k]
		if !ok || !strings.Contains(","+strings.Join(values, ",")+",", ","+v+",") {
			return false
		}
	}
	return true
}

func TestFilterPolicy(t *testing.T) {
	n := Notification{OrgID: "org_a", Type: UsageSpike, Env: kve.EnvPrd, Severity: SeverityHigh}
	if !matches(t, FilterPolicy("org_a"), n.Attributes()) || matches(t, FilterPolicy("org_b"), n.Attributes()) {
		t.Errorf("policy of org_a must select org_a's alerts only")
	}
}
