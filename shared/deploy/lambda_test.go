package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	miniserver "github.com/truora/minidyn/server"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/lambdahttp/rie"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/secrets/smtest"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/store/dynamo"
)

// These tests run the real function binaries the way Lambda does: built
// with -tags lambda.norpc, started by the AWS Lambda Runtime Interface
// Emulator, invoked with the API Gateway fixtures of events/. The functions
// reach DynamoDB through minidyn's HTTP server (the DynamoDB JSON protocol)
// and Secrets Manager through smtest (no emulator exists for it here; smtest
// speaks its JSON protocol), both via the SDK's AWS_ENDPOINT_URL_<SERVICE>
// variables, exactly as the deployed code would reach AWS.

const fakeUpstreamKey = "sk-test-FAKE-lambda-0123456789abcdef"

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// bootstrap builds a function for this machine, once per test binary.
func bootstrap(t *testing.T, fn string) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "kve-lambda-")
		if buildErr != nil {
			return
		}
		for _, f := range []string{"proxy", "api"} {
			out := filepath.Join(buildDir, f, "bootstrap")
			cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out, "../../functions/"+f)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", f, err, b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, fn, "bootstrap")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// awsEnv is a deployment on emulators: a DynamoDB table and the server secrets.
type awsEnv struct {
	ddbURL  string
	sm      *smtest.Server
	store   *dynamo.Store
	secrets *secrets.Manager
	keyring *kve.Keyring
	env     []string
}

func newAWSEnv(t *testing.T) *awsEnv {
	t.Helper()
	ddb := httptest.NewServer(miniserver.NewServer())
	t.Cleanup(ddb.Close)
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ddb.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKE", "FAKESECRET", ""),
	})
	if err := dynamo.CreateTable(t.Context(), client, "kve"); err != nil {
		t.Fatal(err)
	}
	sm := smtest.NewServer(t)
	mgr := secrets.NewManager(sm.Client(t), "")
	for _, name := range []string{"kve/system/pepper", "kve/system/seal", "kve/system/setup"} {
		value := kve.Secret(strings.Repeat("0123456789abcdef", 3) + name) // fake, but long enough
		if name == "kve/system/setup" {
			value = "setup-FAKE-2f9c1e" // the code in events/api-setup.json
		}
		if _, err := mgr.Put(t.Context(), name, value, nil); err != nil {
			t.Fatal(err)
		}
	}
	kr, err := secrets.Keyring(t.Context(), mgr, "kve/system/pepper", "kve/system/seal")
	if err != nil {
		t.Fatal(err)
	}
	return &awsEnv{
		ddbURL: ddb.URL, sm: sm, store: dynamo.Open(client, "kve"), secrets: mgr, keyring: kr,
		env: []string{
			"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIDFAKE", "AWS_SECRET_ACCESS_KEY=FAKESECRET",
			"AWS_ENDPOINT_URL_DYNAMODB=" + ddb.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + sm.URL,
			"KVE_TABLE=kve", "KVE_PEPPER_SECRET_ARN=kve/system/pepper", "KVE_SEAL_SECRET_ARN=kve/system/seal",
			"KVE_SETUP_SECRET_ARN=kve/system/setup", "KVE_KMS_KEY_ARN=arn:aws:kms:us-east-1:111122223333:key/fake",
			"KVE_ALERT_TOPIC_ARN=arn:aws:sns:us-east-1:111122223333:kve-alerts",
			"KVE_PUBLIC_URL=https://console.kve.example.com", "KVE_ALLOW_PRIVATE_UPSTREAMS=127.0.0.0/8",
		},
	}
}

// seed creates an org, a key pointing at upstream and a token; it returns the token value.
func (e *awsEnv) seed(t *testing.T, upstream string, mod func(*kve.Token)) (string, kve.Token) {
	t.Helper()
	ctx := t.Context()
	now := time.Now()
	actor := kve.Actor{UserID: "usr_test", Email: "owner@example.com"}
	org := kve.Org{ID: kve.NewID(kve.PrefixOrg, now), Slug: "acme-" + kve.NewID("", now)[20:], Name: "Acme", CreatedAt: now, CreatedBy: "usr_test"}
	if err := e.store.CreateOrg(ctx, org, kve.Member{OrgID: org.ID, UserID: "usr_test", Role: kve.RoleOwner, JoinedAt: now},
		actor.Event(org.ID, "org.create", org.ID, now)); err != nil {
		t.Fatal(err)
	}
	key := kve.Key{ID: kve.NewID(kve.PrefixKey, now), OrgID: org.ID, Name: "main", Provider: "openai", Upstream: upstream,
		CreatedBy: "usr_test", CreatedAt: now}
	key.Secret = kve.SecretName(org.ID, key.ID)
	version, err := e.secrets.Put(ctx, key.Secret, fakeUpstreamKey, map[string]string{"kve:org": org.ID})
	if err != nil {
		t.Fatal(err)
	}
	key.Version = version
	if err := e.store.CreateKey(ctx, key, actor.Event(org.ID, "key.create", key.ID, now)); err != nil {
		t.Fatal(err)
	}
	v := kve.NewTokenValue(kve.TokenShared, kve.EnvDev)
	tok := kve.Token{ID: kve.NewID(kve.PrefixToken, now), OrgID: org.ID, Name: "lambda", Kind: kve.TokenShared,
		Env: kve.EnvDev, Hint: kve.TokenHint(v), Hash: e.keyring.Hash(v.Reveal()), Key: key.Ref(),
		Policy: kve.Policy{AllowServer: true}, CreatedBy: "usr_test", CreatedAt: now, UpdatedAt: now}
	tok.Sealed = e.keyring.Seal([]byte(v.Reveal()), tok.ID)
	if mod != nil {
		mod(&tok)
	}
	if err := e.store.CreateToken(ctx, tok, actor.Event(org.ID, "token.create", tok.ID, now)); err != nil {
		t.Fatal(err)
	}
	return v.Reveal(), tok
}

// fixture reads events/<name>, replacing the placeholder token.
func fixture(t *testing.T, name, token string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("kve_hb_dev_FIXTUREPLACEHOLDER00000000000000000000"), []byte(token))
}

// streamed splits the streaming framing: JSON head, eight NUL bytes, body.
type streamed struct {
	StatusCode        int                 `json:"statusCode"`
	Headers           map[string]string   `json:"headers"`
	MultiValueHeaders map[string][]string `json:"multiValueHeaders"`
	Body              string
}

func parseStreamed(t *testing.T, raw []byte) streamed {
	t.Helper()
	head, body, ok := bytes.Cut(raw, make([]byte, 8))
	if !ok {
		t.Fatalf("no streaming delimiter in %q", raw)
	}
	var s streamed
	if err := json.Unmarshal(head, &s); err != nil {
		t.Fatalf("head %q: %v", head, err)
	}
	s.Body = string(body)
	return s
}

// upstream is a fake OpenAI API that checks the key it receives.
func fakeOpenAI(t *testing.T, calls *atomic.Int64) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("Authorization") != "Bearer "+fakeUpstreamKey {
			t.Errorf("upstream got Authorization %q", strings.Repeat("*", len(r.Header.Get("Authorization"))))
		}
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, ev := range []string{
				`{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hel"}}]}`,
				`{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"}}]}`,
				`{"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}`,
			} {
				fmt.Fprintf(w, "data: %s\n\n", ev)
				w.(http.Flusher).Flush()
			}
			io.WriteString(w, "data: [DONE]\n\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}`)
	}))
	t.Cleanup(s.Close)
	return s
}

// TestProxyFunction runs functions/proxy under the runtime emulator: tokens
// from DynamoDB, the key from Secrets Manager, usage written to DynamoDB
// before the invocation ends, revocation on the next invocation.
func TestProxyFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the Lambda function")
	}
	e := newAWSEnv(t)
	var calls atomic.Int64
	up := fakeOpenAI(t, &calls)
	token, tok := e.seed(t, up.URL, nil)
	fn := rie.Start(t, bootstrap(t, "proxy"), e.env...)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	raw, err := fn.Invoke(ctx, fixture(t, "proxy-chat.json", token))
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, raw)
	}
	res := parseStreamed(t, raw)
	if res.StatusCode != 200 || !strings.Contains(res.Body, `"chat.completion"`) {
		t.Fatalf("got %d %q", res.StatusCode, res.Body)
	}

	health, _ := json.Marshal(map[string]any{"path": "/healthz", "httpMethod": "GET", "headers": map[string]string{},
		"requestContext": map[string]any{"identity": map[string]string{"sourceIp": "198.51.100.9"}}})
	raw, err = fn.Invoke(ctx, health)
	if res := parseStreamed(t, raw); err != nil || res.StatusCode != 200 || res.Body != "ok\n" {
		t.Fatalf("healthz: %v %d %q", err, res.StatusCode, res.Body)
	}

	raw, err = fn.Invoke(ctx, fixture(t, "proxy-chat-stream.json", token))
	if err != nil {
		t.Fatalf("invoke stream: %v", err)
	}
	res = parseStreamed(t, raw)
	if res.StatusCode != 200 || strings.Count(res.Body, "data: ") != 4 || !strings.HasSuffix(res.Body, "data: [DONE]\n\n") {
		t.Fatalf("stream: got %d %q", res.StatusCode, res.Body)
	}

	// Usage is written before the invocation ends: no wait.
	page, err := e.store.UsageRecords(ctx, tok.OrgID, store.UsageFilter{TokenID: tok.ID})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 {
		t.Fatalf("%d usage records, want 2", len(page.Items))
	}
	for _, u := range page.Items {
		if u.Model != "gpt-4o-mini" || u.PromptTokens == 0 || u.Status != 200 || u.ClientIP != "203.0.113.7" {
			t.Errorf("usage record %+v", u)
		}
	}

	// Revoke in the store: the very next invocation is refused.
	if _, err := e.store.UpdateToken(ctx, tok.OrgID, tok.ID, func(t *kve.Token) error {
		t.RevokedAt = time.Now()
		return nil
	}, kve.Actor{UserID: "usr_test"}.Event(tok.OrgID, "token.revoke", tok.ID, time.Now())); err != nil {
		t.Fatal(err)
	}
	raw, _ = fn.Invoke(ctx, fixture(t, "proxy-chat.json", token))
	if res := parseStreamed(t, raw); res.StatusCode != 401 || !strings.Contains(res.Body, `"invalid_token"`) {
		t.Fatalf("after revoke: %d %q", res.StatusCode, res.Body)
	}
	if calls.Load() != 2 {
		t.Errorf("upstream calls = %d, want 2", calls.Load())
	}
	if out := fn.Output(); strings.Contains(out, fakeUpstreamKey) || strings.Contains(out, token) {
		t.Error("the function's logs hold a secret")
	}
}

// TestAPIFunction runs functions/api under the runtime emulator: the setup
// fixture creates the first owner against DynamoDB with the code from
// Secrets Manager.
func TestAPIFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the Lambda function")
	}
	e := newAWSEnv(t)
	fn := rie.Start(t, bootstrap(t, "api"), e.env...)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	raw, err := fn.Invoke(ctx, fixture(t, "api-setup.json", ""))
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, raw)
	}
	var res struct {
		StatusCode int    `json:"statusCode"`
		Body       string `json:"body"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("result %q: %v", raw, err)
	}
	if res.StatusCode != 201 || !strings.Contains(res.Body, `"api_token":"kvm_`) {
		t.Fatalf("setup: %d %s", res.StatusCode, res.Body)
	}
	if done, err := e.store.SetupDone(ctx); err != nil || !done {
		t.Fatalf("setup not recorded in DynamoDB: %v %v", done, err)
	}
	// The code is single use.
	raw, _ = fn.Invoke(ctx, fixture(t, "api-setup.json", ""))
	json.Unmarshal(raw, &res)
	if res.StatusCode != 409 {
		t.Fatalf("second setup: %d %s", res.StatusCode, res.Body)
	}
}
