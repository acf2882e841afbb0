package mail

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/google/go-cmp/cmp"
)

// sesServer speaks the part of the SESv2 REST protocol that SendEmail uses:
// POST /v2/email/outbound-emails with a JSON body, answered with a message
// id, or with SES's error document when fail is set.
type sesServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []sesRequest
	fail     bool
}

// sesRequest is what the server received, as the wire format names it.
type sesRequest struct {
	Path          string
	Authorization string
	Body          struct {
		FromEmailAddress string
		Destination      struct{ ToAddresses []string }
		Content          struct {
			Simple struct {
				Subject struct{ Data, Charset string }
				Body    struct {
					Text struct{ Data, Charset string }
				}
			}
		}
	}
}

func newSESServer(t *testing.T) *sesServer {
	t.Helper()
	s := &sesServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req sesRequest
		req.Path, req.Authorization = r.Method+" "+r.URL.Path, r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(b, &req.Body); err != nil {
			t.Errorf("SES request body is not JSON: %v", err)
		}
		s.mu.Lock()
		s.requests = append(s.requests, req)
		fail := s.fail
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if fail {
			w.Header().Set("X-Amzn-Errortype", "MessageRejected")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, `{"message":"Email address is not verified."}`)
			return
		}
		io.WriteString(w, `{"MessageId":"0100018e-fake-message-id"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sesServer) received() []sesRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sesRequest(nil), s.requests...)
}

// newSESClient is the real SDK client pointed at srv, with fake credentials.
func newSESClient(url string) *sesv2.Client {
	return sesv2.New(sesv2.Options{
		Region:           "eu-west-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDTESTFAKE", "test-FAKE-secret", ""),
		RetryMaxAttempts: 1,
	})
}

func TestSESSendsAnInvite(t *testing.T) {
	srv := newSESServer(t)
	ses, err := NewSES(newSESClient(srv.URL), "kve@example.com")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Invite{To: "new@example.com", Org: "Acme\r\nBcc: victim@example.com", Inviter: "Olga", Role: "admin",
		Link: "https://kve.example.com/invite/CODE123", Expires: time.Date(2026, 3, 5, 9, 0, 0, 0, time.UTC)}.Message()
	if err != nil {
		t.Fatal(err)
	}
	if err := ses.Send(t.Context(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := srv.received()
	if len(got) != 1 {
		t.Fatalf("SES received %d requests, want 1", len(got))
	}
	req := got[0]
	if req.Path != "POST /v2/email/outbound-emails" {
		t.Errorf("request = %s", req.Path)
	}
	if !strings.HasPrefix(req.Authorization, "AWS4-HMAC-SHA256 Credential=AKIDTESTFAKE/") || !strings.Contains(req.Authorization, "/ses/aws4_request") {
		t.Errorf("Authorization = %q, want a SigV4 signature for ses", req.Authorization)
	}
	b := req.Body
	if diff := cmp.Diff([]string{"new@example.com"}, b.Destination.ToAddresses); diff != "" {
		t.Errorf("ToAddresses (-want +got):\n%s", diff)
	}
	simple := b.Content.Simple
	if b.FromEmailAddress != "kve@example.com" || simple.Subject.Charset != "UTF-8" || simple.Body.Text.Charset != "UTF-8" {
		t.Errorf("from %q, charsets %q %q", b.FromEmailAddress, simple.Subject.Charset, simple.Body.Text.Charset)
	}
	if simple.Subject.Data != m.Subject || strings.ContainsAny(simple.Subject.Data, "\r\n") {
		t.Errorf("Subject = %q, want %q on one line", simple.Subject.Data, m.Subject)
	}
	if simple.Body.Text.Data != m.Text || strings.Count(simple.Body.Text.Data, "https://kve.example.com/invite/CODE123") != 1 {
		t.Errorf("Text = %q", simple.Body.Text.Data)
	}
}

func TestSESErrors(t *testing.T) {
	srv := newSESServer(t)
	ses, err := NewSES(newSESClient(srv.URL), "kve@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Message{
		{To: "Eve <eve@example.com>", Subject: "s", Text: "t"},
		{To: "a@example.com, b@example.com", Subject: "s", Text: "t"},
		{To: "a@example.com", Subject: "\r\n", Text: "t"},
		{To: "a@example.com", Subject: "s"},
	} {
		if err := ses.Send(t.Context(), bad); err == nil {
			t.Errorf("Send(%+v) succeeded", bad)
		}
	}
	if n := len(srv.received()); n != 0 {
		t.Errorf("SES received %d requests for refused messages", n)
	}

	srv.mu.Lock()
	srv.fail = true
	srv.mu.Unlock()
	err = ses.Send(t.Context(), Message{To: "a@example.com", Subject: "s", Text: "t"})
	if err == nil || !strings.Contains(err.Error(), "MessageRejected") {
		t.Errorf("Send on a rejection: %v, want the SES error", err)
	}

	if _, err := NewSES(newSESClient(srv.URL), "KVE <kve@example.com>"); err == nil {
		t.Error("NewSES accepted a sender with a display name")
	}
}
