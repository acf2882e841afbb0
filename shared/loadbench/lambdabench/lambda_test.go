package lambdabench

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	miniserver "github.com/truora/minidyn/server"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/lambdahttp/rie"
	"github.com/keyvault-edge/kve/shared/loadbench"
	"github.com/keyvault-edge/kve/shared/secrets"
	"github.com/keyvault-edge/kve/shared/secrets/smtest"
	"github.com/keyvault-edge/kve/shared/store/dynamo"
)

// TestLambdaFigures measures the proxy function the way Lambda runs it:
// the bootstrap built as `make build` builds it (for this machine's
// architecture), started by the AWS Lambda Runtime Interface Emulator,
// tokens from DynamoDB (minidyn over HTTP), the key from Secrets Manager
// (smtest), usage written to DynamoDB before each invocation ends, and the
// benchmark's fast upstream. It reports the emulator's Init Duration over
// several cold starts (measured against a Runtime API of the test's own) and
// its per-invocation Duration over many warm invocations (medians), from the
// emulator's REPORT lines.
//
// It runs only with KVE_LOADBENCH=1: it takes a minute and its figures
// want a quiet machine.
//
//	KVE_LOADBENCH=1 go test -run TestLambdaFigures -v -count=1 ./shared/loadbench
func TestLambdaFigures(t *testing.T) {
	if os.Getenv("KVE_LOADBENCH") != "1" {
		t.Skip("set KVE_LOADBENCH=1 to measure the Lambda figures")
	}
	coldStarts, invocations := envInt(t, "KVE_LOADBENCH_COLD", 10), envInt(t, "KVE_LOADBENCH_INVOKES", 200)
	bootstrap := build(t, "github.com/keyvault-edge/kve/functions/proxy")
	st, err := os.Stat(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bootstrap (%s, -tags lambda.norpc -trimpath -ldflags='-s -w'): %.1f MB", runtimeArch(), float64(st.Size())/1e6)

	up := httptest.NewServer(loadbench.Upstream(testKey))
	t.Cleanup(up.Close)
	ddbCalls := &callCounter{}
	env, token := lambdaEnv(t, up.URL, ddbCalls)
	chat := fixture(t, "proxy-chat.json", token)
	stream := fixture(t, "proxy-chat-stream.json", token)

	var inits []float64
	for range coldStarts {
		inits = append(inits, initDuration(t, bootstrap, env))
	}
	t.Logf("init (process start to first /next) over %d cold starts: median %.1f ms, min %.1f ms, max %.1f ms",
		len(inits), median(inits), slices.Min(inits), slices.Max(inits))

	floor := emulatorFloor(t, invocations, stream)
	t.Logf("floor: a function that streams four events through the same adapter: median %.2f ms", floor)

	fn := rie.Start(t, bootstrap, env...)
	for _, tt := range []struct {
		name    string
		payload []byte
		stream  bool
	}{{"chat completion", chat, false}, {"streamed chat completion", stream, true}} {
		name := tt.name
		before := len(reportLines(fn.Output()))
		invoke(t, fn, tt.payload, tt.stream) // warms the connections and the key cache
		ddbCalls.reset()
		var wall []float64
		for range invocations {
			start := time.Now()
			invoke(t, fn, tt.payload, tt.stream)
			wall = append(wall, float64(time.Since(start).Microseconds())/1000)
		}
		reports := waitReports(t, fn, before+invocations+1)[before+1:]
		n, busy := ddbCalls.stats()
		var d []float64
		for _, r := range reports {
			d = append(d, r.duration)
		}
		slices.Sort(d)
		t.Logf("%s: handler duration over %d invocations: median %.2f ms (%.2f ms above the floor), p90 %.2f ms, max %.2f ms; "+
			"invoke round trip median %.2f ms; DynamoDB: %.1f calls per invocation, %.2f ms of emulator time per invocation",
			name, len(d), median(d), median(d)-floor, d[len(d)*9/10], d[len(d)-1], median(wall),
			float64(n)/float64(invocations), busy.Seconds()*1000/float64(invocations))
	}
}

const testKey = "sk-test-FAKE-lambdabench-0123456789abcdef" // the upstream's key

// median returns the middle of v (sorted in place).
func median(v []float64) float64 {
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// emulatorFloor is the median Duration of the lambdahttp test function,
// which streams four events through the same adapter and touches no
// backend: what the emulator, the runtime client and the adapter cost.
func emulatorFloor(t *testing.T, invocations int, payload []byte) float64 {
	t.Helper()
	bin := build(t, "github.com/keyvault-edge/kve/shared/lambdahttp/testdata/streamfn")
	fn := rie.Start(t, bin)
	for range invocations + 1 {
		if _, err := fn.Invoke(t.Context(), payload); err != nil {
			t.Fatal(err)
		}
	}
	var d []float64
	for _, r := range waitReports(t, fn, invocations+1)[1:] {
		d = append(d, r.duration)
	}
	return median(d)
}

// callCounter counts the requests an emulator serves and the time it spends.
type callCounter struct {
	mu   sync.Mutex
	n    int
	busy time.Duration
}

func (c *callCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		c.mu.Lock()
		c.n++
		c.busy += time.Since(start)
		c.mu.Unlock()
	})
}

func (c *callCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n, c.busy = 0, 0
}

func (c *callCounter) stats() (int, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.busy
}

// initDuration runs bootstrap against a Runtime API of its own and returns
// the time (ms) from starting the process to its first request for an
// invocation: Lambda's init phase. (The emulator's own Init Duration starts
// only when the first invocation arrives, after the bootstrap has already
// initialized, so it reads near zero.)
func initDuration(t *testing.T, bootstrap string, env []string) float64 {
	t.Helper()
	next := make(chan time.Time, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/2018-06-01/runtime/invocation/next" {
			select {
			case next <- time.Now():
			default:
			}
			<-r.Context().Done() // no invocation: the process is stopped
			return
		}
		http.NotFound(w, r)
	}))
	defer api.Close()
	cmd := exec.Command(bootstrap)
	cmd.Env = append([]string{"AWS_LAMBDA_RUNTIME_API=" + strings.TrimPrefix(api.URL, "http://"),
		"AWS_LAMBDA_FUNCTION_NAME=kve-bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024"}, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	select {
	case at := <-next:
		return float64(at.Sub(start).Microseconds()) / 1000
	case <-time.After(30 * time.Second):
		t.Fatalf("bootstrap did not ask for an invocation:\n%s", out.String())
		return 0
	}
}

// report is one REPORT line of the emulator.
type report struct{ duration float64 }

var reportRE = regexp.MustCompile(`REPORT RequestId: \S+\t(?:Init Duration: [0-9.]+ ms\t)?Duration: ([0-9.]+) ms`)

func reportLines(out string) []report {
	var rs []report
	for _, m := range reportRE.FindAllStringSubmatch(out, -1) {
		var r report
		r.duration, _ = strconv.ParseFloat(m[1], 64)
		rs = append(rs, r)
	}
	return rs
}

// waitReports waits for n REPORT lines: the emulator prints a REPORT
// line just after the invocation's answer.
func waitReports(t *testing.T, fn *rie.Emulator, n int) []report {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if rs := reportLines(fn.Output()); len(rs) >= n {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d REPORT lines:\n%s", n, fn.Output())
		}
		time.Sleep(5 * time.Millisecond) // the emulator's output, not our state
	}
}

// invoke invokes the function and checks that the upstream's answer came
// back whole.
func invoke(t *testing.T, fn *rie.Emulator, payload []byte, stream bool) {
	t.Helper()
	raw, err := fn.Invoke(t.Context(), payload)
	if err != nil {
		t.Fatalf("invoke: %v\n%s", err, raw)
	}
	head, body, ok := bytes.Cut(raw, make([]byte, 8))
	var res struct {
		StatusCode int `json:"statusCode"`
	}
	if !ok || json.Unmarshal(head, &res) != nil || res.StatusCode != 200 {
		t.Fatalf("invocation result %q", raw)
	}
	want := loadbench.Completion
	if stream {
		want = strings.Join(loadbench.Stream, "")
	}
	if string(body) != want {
		t.Fatalf("body %q, want the upstream's", body)
	}
}

// build builds a function as `make build` does, for the machine the
// emulator runs on.
func build(t *testing.T, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "bootstrap")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func runtimeArch() string {
	b, _ := exec.Command("go", "env", "GOOS", "GOARCH").Output()
	return strings.Join(strings.Fields(string(b)), "/")
}

// lambdaEnv is the proxy function's environment on emulators, seeded with
// an org, a key on upstream and a dev token with no limits; it returns the
// environment and the token. calls counts the requests DynamoDB receives.
func lambdaEnv(t *testing.T, upstream string, calls *callCounter) ([]string, string) {
	t.Helper()
	ctx := t.Context()
	ddb := httptest.NewServer(calls.wrap(miniserver.NewServer()))
	t.Cleanup(ddb.Close)
	client := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(ddb.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDFAKE", "FAKESECRET", ""),
	})
	if err := dynamo.CreateTable(ctx, client, "kve"); err != nil {
		t.Fatal(err)
	}
	store := dynamo.Open(client, "kve")
	sm := smtest.NewServer(t)
	mgr := secrets.NewManager(sm.Client(t), "")
	for _, name := range []string{"kve/system/pepper", "kve/system/seal"} {
		if _, err := mgr.Put(ctx, name, kve.Secret(strings.Repeat("0123456789abcdef", 3)+name), nil); err != nil {
			t.Fatal(err)
		}
	}
	keyring, err := secrets.Keyring(ctx, mgr, "kve/system/pepper", "kve/system/seal")
	if err != nil {
		t.Fatal(err)
	}

	now := time.Now()
	actor := kve.Actor{UserID: "usr_bench", Email: "bench@example.com"}
	org := kve.Org{ID: kve.NewID(kve.PrefixOrg, now), Slug: "bench", Name: "Bench", CreatedAt: now, CreatedBy: actor.UserID}
	if err := store.CreateOrg(ctx, org, kve.Member{OrgID: org.ID, UserID: actor.UserID, Role: kve.RoleOwner, JoinedAt: now},
		actor.Event(org.ID, "org.create", org.ID, now)); err != nil {
		t.Fatal(err)
	}
	key := kve.Key{ID: kve.NewID(kve.PrefixKey, now), OrgID: org.ID, Name: "bench", Provider: "openai", Upstream: upstream,
		CreatedBy: actor.UserID, CreatedAt: now}
	key.Secret = kve.SecretName(org.ID, key.ID)
	if key.Version, err = mgr.Put(ctx, key.Secret, testKey, map[string]string{"kve:org": org.ID}); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateKey(ctx, key, actor.Event(org.ID, "key.create", key.ID, now)); err != nil {
		t.Fatal(err)
	}
	// A dev token, as the fixtures' placeholder is: the API would give it
	// the dev caps; the store takes the policy as given, limits off.
	v := kve.NewTokenValue(kve.TokenShared, kve.EnvDev)
	tok := kve.Token{ID: kve.NewID(kve.PrefixToken, now), OrgID: org.ID, Name: "bench", Kind: kve.TokenShared,
		Env: kve.EnvDev, Hint: kve.TokenHint(v), Hash: keyring.Hash(v.Reveal()), Key: key.Ref(),
		Policy: kve.Policy{AllowServer: true}, CreatedBy: actor.UserID, CreatedAt: now, UpdatedAt: now}
	tok.Sealed = keyring.Seal([]byte(v.Reveal()), tok.ID)
	if err := store.CreateToken(ctx, tok, actor.Event(org.ID, "token.create", tok.ID, now)); err != nil {
		t.Fatal(err)
	}
	// The variables the CDK stack sets (shared/stackenv), by name: they
	// are the contract with the stack.
	return []string{
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=AKIDFAKE", "AWS_SECRET_ACCESS_KEY=FAKESECRET",
		"AWS_ENDPOINT_URL_DYNAMODB=" + ddb.URL, "AWS_ENDPOINT_URL_SECRETS_MANAGER=" + sm.URL,
		"KVE_TABLE=kve", "KVE_PEPPER_SECRET_ARN=kve/system/pepper", "KVE_SEAL_SECRET_ARN=kve/system/seal",
		"KVE_SETUP_SECRET_ARN=kve/system/setup", "KVE_KMS_KEY_ARN=arn:aws:kms:us-east-1:111122223333:key/fake",
		"KVE_ALERT_TOPIC_ARN=arn:aws:sns:us-east-1:111122223333:kve-alerts",
		"KVE_PUBLIC_URL=https://console.kve.example.com", "KVE_ALLOW_PRIVATE_UPSTREAMS=127.0.0.0/8",
		"KVE_LOG_LEVEL=warn",
	}, v.Reveal()
}

// fixture reads an API Gateway event of events/ with the token in place of
// the placeholder.
func fixture(t *testing.T, name, token string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.ReplaceAll(b, []byte("kve_hb_dev_FIXTUREPLACEHOLDER00000000000000000000"), []byte(token))
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive count", name, s)
	}
	return n
}
