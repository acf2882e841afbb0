package deploy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/lambdahttp/rie"
)

// sesRecorder is a small server speaking the SESv2 SendEmail protocol
// (POST /v2/email/outbound-emails, JSON), which keeps what it is sent.
type sesRecorder struct {
	*httptest.Server
	mu    sync.Mutex
	mails []sentMail
}

type sentMail struct {
	FromEmailAddress string
	Destination      struct{ ToAddresses []string }
	Content          struct {
		Simple struct {
			Subject struct{ Data string }
			Body    struct{ Text struct{ Data string } }
		}
	}
}

func newSESRecorder(t *testing.T) *sesRecorder {
	t.Helper()
	s := &sesRecorder{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v2/email/outbound-emails" {
			t.Errorf("SES got %s %s", r.Method, r.URL.Path)
			http.NotFound(w, r)
			return
		}
		var m sentMail
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			t.Errorf("SES request: %v", err)
		}
		s.mu.Lock()
		s.mails = append(s.mails, m)
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"MessageId":"fake-message-id"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *sesRecorder) sent() []sentMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sentMail(nil), s.mails...)
}

// apiCall invokes the api function with a REST API proxy event and decodes
// the JSON answer.
func apiCall(t *testing.T, ctx context.Context, fn *rie.Emulator, method, path, token, body string, want int, out any) {
	t.Helper()
	headers := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		headers["Authorization"] = "Bearer " + token
	}
	ev, _ := json.Marshal(map[string]any{"path": path, "httpMethod": method, "headers": headers, "body": body,
		"requestContext": map[string]any{"identity": map[string]string{"sourceIp": "198.51.100.14"}}})
	raw, err := fn.Invoke(ctx, ev)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
	}
	var res struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("%s %s: result %q: %v", method, path, raw, err)
	}
	if res.StatusCode != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, res.StatusCode, res.Body, want)
	}
	if out != nil {
		if err := json.Unmarshal([]byte(res.Body), out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// TestAPIFunctionMailsInvites runs functions/api with KVE_MAIL_FROM set:
// an invite goes out through SES (the real SDK client, against a server
// speaking SES's protocol), with the link under KVE_PUBLIC_URL, and its
// code works for the invitee; the inviter gets no link.
func TestAPIFunctionMailsInvites(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the Lambda function")
	}
	e := newAWSEnv(t)
	ses := newSESRecorder(t)
	fn := rie.Start(t, bootstrap(t, "api"), append(e.env, "KVE_MAIL_FROM=kve@example.com", "AWS_ENDPOINT_URL_SESV2="+ses.URL)...)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	var setup struct {
		APIToken string `json:"api_token"`
	}
	raw, err := fn.Invoke(ctx, fixture(t, "api-setup.json", ""))
	if err != nil {
		t.Fatal(err)
	}
	var res struct{ Body string }
	if err := json.Unmarshal(raw, &res); err != nil || json.Unmarshal([]byte(res.Body), &setup) != nil || setup.APIToken == "" {
		t.Fatalf("setup: %s", raw)
	}
	var org struct{ Slug string }
	apiCall(t, ctx, fn, "POST", "/api/v1/orgs", setup.APIToken, `{"name":"Acme"}`, http.StatusCreated, &org)
	var inv map[string]any
	apiCall(t, ctx, fn, "POST", "/api/v1/orgs/"+org.Slug+"/invites", setup.APIToken,
		`{"email":"new@example.com","role":"developer"}`, http.StatusCreated, &inv)
	if inv["mailed"] != true || inv["accept_url"] != nil {
		t.Errorf("invite answer = %v, want mailed and no accept_url", inv)
	}

	mails := ses.sent()
	if len(mails) != 1 {
		t.Fatalf("SES got %d mails, want 1", len(mails))
	}
	m := mails[0]
	if m.FromEmailAddress != "kve@example.com" || len(m.Destination.ToAddresses) != 1 || m.Destination.ToAddresses[0] != "new@example.com" {
		t.Errorf("mail from %q to %v", m.FromEmailAddress, m.Destination.ToAddresses)
	}
	_, link, ok := strings.Cut(m.Content.Simple.Body.Text.Data, "https://console.kve.example.com/invite/")
	code, _, _ := strings.Cut(link, "\n")
	if !ok || code == "" {
		t.Fatalf("the mail holds no link under KVE_PUBLIC_URL:\n%s", m.Content.Simple.Body.Text.Data)
	}
	var info struct{ Email string }
	apiCall(t, ctx, fn, "GET", "/api/v1/invites/"+code, "", "", http.StatusOK, &info)
	var joined struct {
		APIToken string `json:"api_token"`
	}
	apiCall(t, ctx, fn, "POST", "/api/v1/invites/accept", "",
		`{"code":"`+code+`","name":"Nia New","password":"new-password-FAKE-77"}`, http.StatusCreated, &joined)
	if info.Email != "new@example.com" || !strings.HasPrefix(joined.APIToken, "kvm_") {
		t.Errorf("invite info %+v, joined with a token: %v", info, joined.APIToken != "")
	}
	if out := fn.Output(); strings.Contains(out, code) || strings.Contains(out, joined.APIToken) {
		t.Error("the function's logs hold the invite code or an API token")
	}
}
