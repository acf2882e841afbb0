package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/store"
	"github.com/keyvault-edge/kve/shared/store/sqlite"
)

// TestUsageSurvivesKill (SECURITY T50, G4): the local-mode binary is
// killed with SIGKILL 20 times at random points while clients stream chat
// completions through it, and started again on the same data directory.
// Afterwards every request whose response head reached its client has
// exactly one usage record, and the records of forwarded requests are at
// least as many as the requests the upstream answered: none is lost,
// those cut by a kill are recorded as interrupted at their reservation.
func TestUsageSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the local-mode binary 20 times")
	}
	bin := filepath.Join(t.TempDir(), "kve-local")
	build := exec.Command("go", "build", "-o", bin, "../../functions/local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build local mode: %v\n%s", err, out)
	}
	up := newStreamingUpstream(t)
	data := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr

	p := startLocal(t, bin, data, addr)
	pv := provision(t, base, data, up.URL, nil)
	token, orgID := pv.token, pv.orgID

	seen := map[string]bool{} // request ids whose response head reached the client
	var seenMu sync.Mutex
	const kills = 20
	for i := range kills {
		if i > 0 {
			p = startLocal(t, bin, data, addr)
		}
		ctx, stop := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for n := 0; ctx.Err() == nil; n++ {
					if id := streamOnce(ctx, base, token, (w+n)%4 != 0); id != "" {
						seenMu.Lock()
						seen[id] = true
						seenMu.Unlock()
					}
				}
			})
		}
		time.Sleep(time.Duration(100+rand.IntN(500)) * time.Millisecond) // a random point under load
		p.kill(t)
		stop()
		wg.Wait()
	}
	// A last start stores what the last kill left, then a clean stop.
	p = startLocal(t, bin, data, addr)
	p.stop(t)

	st, err := sqlite.Open(t.Context(), filepath.Join(data, "kve.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	records := map[string]kve.Usage{}
	f := store.UsageFilter{Limit: store.MaxLimit}
	for {
		page, err := st.UsageRecords(t.Context(), orgID, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Items {
			if _, dup := records[u.RequestID]; dup {
				t.Errorf("request %s recorded twice", u.RequestID)
			}
			records[u.RequestID] = u
		}
		if page.Next == "" {
			break
		}
		f.Cursor = page.Next
	}
	missing, interrupted := 0, 0
	for id := range seen {
		if _, ok := records[id]; !ok {
			missing++
		}
	}
	for _, u := range records {
		if u.Reason == "interrupted" {
			interrupted++
			if u.CostMicro <= 0 || !u.Estimated {
				t.Errorf("interrupted record %s: cost %d, estimated %v; want its reservation", u.RequestID, u.CostMicro, u.Estimated)
			}
		}
	}
	answered, received := up.answered.Load(), up.received.Load()
	t.Logf("%d kills: %d responses seen by clients, %d records (%d interrupted), upstream received %d and answered %d",
		kills, len(seen), len(records), interrupted, received, answered)
	if missing > 0 {
		t.Errorf("%d of %d requests whose response head reached the client have no record", missing, len(seen))
	}
	if int64(len(records)) < answered {
		t.Errorf("%d records for %d requests the upstream answered", len(records), answered)
	}
	if interrupted == 0 {
		t.Errorf("no request was cut by %d kills under load: the test did not exercise recovery", kills)
	}
	if len(seen) < 100 {
		t.Errorf("only %d requests reached their clients: too little load to tell", len(seen))
	}
}

// streamOnce sends one chat completion (streamed or not) and returns its
// request id if the response head arrived with status 200.
func streamOnce(ctx context.Context, base, token string, stream bool) string {
	body := `{"model":"gpt-4o-mini","max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"gpt-4o-mini","max_tokens":200,"stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	}
	req, err := http.NewRequestWithContext(ctx, "POST", base+"/openai/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return ""
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body) // a kill cuts it: the head arrived all the same
	if res.StatusCode != http.StatusOK {
		return ""
	}
	return res.Header.Get("X-Request-Id")
}

// streamingUpstream answers chat completions, streamed over ~100 ms (six
// events) or at once, and counts what it received and answered.
type streamingUpstream struct {
	*httptest.Server
	received, answered atomic.Int64
}

func newStreamingUpstream(t *testing.T) *streamingUpstream {
	t.Helper()
	u := &streamingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.received.Add(1)
		if !bytes.Contains(b, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			u.answered.Add(1)
			io.WriteString(w, `{"id":"c","object":"chat.completion","model":"gpt-4o-mini-2024-07-18","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":20,"total_tokens":30}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		u.answered.Add(1)
		fl := w.(http.Flusher)
		for i := range 5 {
			fmt.Fprintf(w, "data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[{\"delta\":{\"content\":\"word%d \"}}]}\n\n", i)
			fl.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond): // a model writing
			}
		}
		io.WriteString(w, "data: {\"model\":\"gpt-4o-mini-2024-07-18\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}}\n\ndata: [DONE]\n\n")
	}))
	t.Cleanup(u.Close)
	return u
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// process is a running local-mode binary.
type process struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

func startLocal(t *testing.T, bin, data, addr string) *process {
	t.Helper()
	p := &process{out: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, "--listen", addr, "--data", data, "--allow-private-upstreams", "127.0.0.0/8",
		"--log-level", "warn", "--drain-timeout", "10s")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return p
			}
		}
		if time.Now().After(deadline) {
			p.cmd.Process.Kill()
			p.cmd.Wait()
			t.Fatalf("local mode did not start: %v\n%s", err, p.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("local mode stopped with %v\n%s", err, p.out)
	}
}

// provisioned is what provision set up.
type provisioned struct {
	token    string // the prd token's value
	orgID    string
	orgSlug  string
	apiToken string // the owner's kvm_ token
}

// provision sets local mode up through its API as a newcomer would: the
// first owner, an organization, a key for the upstream named main, and a
// prd token with a budget and the limits in extra.
func provision(t testing.TB, base, data, upstream string, extra map[string]any) provisioned {
	t.Helper()
	code, err := os.ReadFile(filepath.Join(data, "setup-code"))
	if err != nil {
		t.Fatal(err)
	}
	call := func(path, auth string, in, out any) {
		t.Helper()
		b, _ := json.Marshal(in)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode/100 != 2 {
			msg, _ := io.ReadAll(res.Body)
			t.Fatalf("POST %s: %d %s", path, res.StatusCode, msg)
		}
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var cred struct {
		APIToken string `json:"api_token"`
	}
	call("/api/v1/setup", "", map[string]string{"code": strings.TrimSpace(string(code)), "email": "owner@example.com",
		"name": "Olga Owner", "password": "correct-horse-FAKE-battery"}, &cred)
	var org struct{ ID, Slug string }
	call("/api/v1/orgs", cred.APIToken, map[string]string{"name": "Acme"}, &org)
	var key struct{ ID string }
	call("/api/v1/orgs/"+org.Slug+"/keys", cred.APIToken, map[string]string{"name": "main", "provider": "openai",
		"upstream": upstream, "secret": "sk-test-FAKE-kill-0123456789abcdef"}, &key)
	var tok struct {
		Value string `json:"token"`
	}
	body := map[string]any{"name": "load", "key": "main", "env": "prd", "allow_server": true, "budget_usd": 1000}
	for k, v := range extra {
		body[k] = v
	}
	call("/api/v1/orgs/"+org.Slug+"/tokens", cred.APIToken, body, &tok)
	return provisioned{token: tok.Value, orgID: org.ID, orgSlug: org.Slug, apiToken: cred.APIToken}
}
