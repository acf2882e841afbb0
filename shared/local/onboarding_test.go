package local_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/local"
)

// TestOnboarding is the onboarding story as a test: a teammate joins by
// invite, fetches the team's dev .env from GET …/env, commits it with a
// small Node app (testdata/onboarding: the openai npm package, pinned and
// locked), and `npm run dev` works: the app's one chat completion goes
// through local mode to the upstream with the real key swapped in.
//
// It needs node, npm and the npm registry (npm ci installs the locked
// package); without them it skips, unless KVE_REQUIRE_SERVICES=1.
func TestOnboarding(t *testing.T) {
	t.Parallel()
	npm := requireTool(t, "npm")
	requireTool(t, "node")
	up := kvetest.NewOpenAI(t)
	inst := kvetest.Start(t)
	owner := inst.Setup(t)
	org := inst.CreateOrg(t, "Acme").Slug
	inst.AddKey(t, org, "openai-main", up)
	shared := inst.CreateToken(t, org, map[string]any{"name": "team dev", "key": "openai-main", "env": "dev", "allow_server": true})
	c := newTeamClient(inst)
	devToken, _ := c.join(t, org, owner, "dana@example.com", "developer")

	env := c.call(t, true, "GET", "/api/v1/orgs/"+org+"/env?env=dev", devToken, nil, http.StatusOK, nil)
	for _, line := range []string{"OPENAI_API_KEY=" + shared.Value + "\n", "OPENAI_BASE_URL=" + inst.URL + "/openai/v1\n"} {
		if !strings.Contains(string(env), line) {
			t.Fatalf("the .env lacks its %s line", strings.SplitN(line, "=", 2)[0])
		}
	}

	app := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "index.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", "onboarding", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(app, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(app, ".env"), env, 0o644); err != nil {
		t.Fatal(err)
	}

	if out, err := runIn(t, app, 3*time.Minute, npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"); err != nil {
		if offline.MatchString(out) && os.Getenv("KVE_REQUIRE_SERVICES") != "1" {
			t.Skipf("npm ci cannot reach the npm registry (set KVE_REQUIRE_SERVICES=1 to fail instead):\n%s", out)
		}
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	calls := up.Calls()
	out, err := runIn(t, app, time.Minute, npm, "run", "--silent", "dev")
	if err != nil {
		t.Fatalf("npm run dev: %v\n%s", err, redactToken(out, shared.Value))
	}
	if got := strings.TrimSpace(out); got != "Hello! How can I help you today?" {
		t.Errorf("npm run dev printed %q", redactToken(got, shared.Value))
	}
	reqs := up.Requests()
	if up.Calls() != calls+1 || len(reqs) == 0 {
		t.Fatalf("the upstream got %d calls from the app, want 1", up.Calls()-calls)
	}
	last := reqs[len(reqs)-1]
	if last.Path != "/v1/chat/completions" || last.Header.Get("Authorization") != "Bearer "+up.Key {
		t.Errorf("the upstream got %s without the real key", last.Path)
	}
	if !strings.Contains(last.Header.Get("User-Agent"), "OpenAI/JS") {
		t.Errorf("the upstream's caller was %q, not the openai npm package", last.Header.Get("User-Agent"))
	}
}

// offline matches npm's messages for a registry it cannot reach.
var offline = regexp.MustCompile(`ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|network|proxy`)

// requireTool returns the path of a program, skipping the test without it
// (failing it when KVE_REQUIRE_SERVICES=1).
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("KVE_REQUIRE_SERVICES") == "1" {
			t.Fatalf("%s is not installed and KVE_REQUIRE_SERVICES=1", name)
		}
		t.Skipf("%s is not installed", name)
	}
	return p
}

// runIn runs a program in dir with the machine's environment minus any
// OpenAI settings (node --env-file never overrides what is set already),
// for at most timeout, and returns its combined output.
func runIn(t *testing.T, dir string, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OPENAI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "NO_UPDATE_NOTIFIER=1", "npm_config_update_notifier=false")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// redactToken keeps a token value out of a failure message.
func redactToken(s, token string) string { return strings.ReplaceAll(s, token, "[token]") }

// TestOnboardingInviteByMail is the invite half of the story with mail
// configured, as `make dev --smtp … --mail-from …` runs it: the flags parse,
// the invite goes out over SMTP (to an in-process go-smtp server on a
// loopback port) with the link under the public URL, the inviter is not
// given the link, and the teammate joins with the mailed link.
func TestOnboardingInviteByMail(t *testing.T) {
	t.Parallel()
	box := startMailbox(t)
	cfg, err := local.ParseConfig([]string{"--smtp", "smtp://" + box.addr, "--mail-from", "kve@example.com"},
		func(string) string { return "" }, io.Discard)
	if err != nil || cfg.SMTP.Reveal() != "smtp://"+box.addr || cfg.MailFrom != "kve@example.com" {
		t.Fatalf("ParseConfig = %+v, %v", cfg, err)
	}
	for _, args := range [][]string{
		{"--smtp", "smtp://" + box.addr},
		{"--mail-from", "kve@example.com"},
		{"--smtp", "http://" + box.addr, "--mail-from", "kve@example.com"},
		{"--smtp", "smtp://user:pw-CANARY-smtp@" + box.addr, "--mail-from", "Kve <kve@example.com>"},
	} {
		_, err := local.ParseConfig(args, func(string) string { return "" }, io.Discard)
		if err == nil || strings.Contains(err.Error(), "pw-CANARY-smtp") {
			t.Errorf("ParseConfig(%q) = %v, want an error without the password", args, err)
		}
	}

	inst := kvetest.Start(t, kvetest.WithConfig(func(c *local.Config) { c.SMTP, c.MailFrom = cfg.SMTP, cfg.MailFrom }))
	owner := inst.Setup(t)
	org := inst.CreateOrg(t, "Acme").Slug
	c := newTeamClient(inst)
	var inv map[string]any
	c.call(t, false, "POST", "/api/v1/orgs/"+org+"/invites", owner, map[string]string{"email": "dana@example.com", "role": "developer"},
		http.StatusCreated, &inv)
	if inv["mailed"] != true || inv["accept_url"] != nil {
		t.Errorf("invite answer = %v, want mailed and no accept_url", inv)
	}
	msgs := box.messages()
	if len(msgs) != 1 || msgs[0].to != "dana@example.com" || msgs[0].from != "kve@example.com" {
		t.Fatalf("the mail server got %+v", msgs)
	}
	text := strings.ReplaceAll(msgs[0].data, "=\r\n", "") // quoted-printable soft breaks
	_, rest, ok := strings.Cut(text, inst.URL+"/invite/")
	code, _, _ := strings.Cut(rest, "\r\n")
	if !ok || code == "" {
		t.Fatalf("the mail holds no link under the public URL:\n%s", text)
	}
	inst.Watch("the mailed invite code", code)
	var joined struct {
		APIToken string `json:"api_token"`
	}
	c.call(t, true, "POST", "/api/v1/invites/accept", "", map[string]string{"code": code, "name": "Dana Dev", "password": kvetest.Canary("pw-")},
		http.StatusCreated, &joined)
	inst.Watch("the new member's API token", joined.APIToken)
	c.call(t, false, "GET", "/api/v1/orgs/"+org+"/members", joined.APIToken, nil, http.StatusOK, nil)
}

// mailbox is an in-process SMTP server (emersion/go-smtp) on a loopback
// port, without TLS or authentication, as a developer's local mail catcher.
type mailbox struct {
	addr string
	mu   sync.Mutex
	msgs []mailed
}

type mailed struct{ from, to, data string }

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	b := &mailbox{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: b}, nil }))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return b
}

func (b *mailbox) messages() []mailed {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]mailed(nil), b.msgs...)
}

type mailSession struct {
	box *mailbox
	msg mailed
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error { s.msg.from = from; return nil }
func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error   { s.msg.to = to; return nil }
func (s *mailSession) Reset()                                      { s.msg = mailed{} }
func (s *mailSession) Logout() error                               { return nil }

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = string(b)
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, s.msg)
	s.box.mu.Unlock()
	return nil
}
