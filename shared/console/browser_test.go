package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/keyvault-edge/kve/shared/kvetest"
)

// TestBrowser drives Debian's Chromium through the dashboard of a local-mode
// kve, as a new team would use it: the Owner sets kve up, creates an
// organization, adds a real key (a fake upstream's), creates a token, copies
// it with the copy button, and a proxied request with the copied token
// reaches the upstream; the Owner revokes it in the confirmation dialog,
// with the keyboard, and the next proxied request is refused. Every main
// page is photographed at 1440 and 375 pixels wide and checked for labels,
// overflow, and errors in the browser's console (a CSP violation is one).
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	in := kvetest.Start(t)
	up := kvetest.NewOpenAI(t)
	b := openBrowser(t, exe, in.URL)

	// Signed out, everything leads to the login page, which links setup.
	b.open("/")
	b.at("/login")
	b.page("login")
	b.follow(`a[href="/setup"]`, 200)
	b.at("/setup")
	b.page("setup")
	password := kvetest.Canary("pw-")
	in.Watch("the owner's password", password)
	b.fill("#code", in.SetupCode)
	b.fill("#email", "owner@example.com")
	b.fill("#name", "Olga Owner")
	b.fill("#password", password)
	b.follow(`form[action="/setup"] button[type=submit]`, 200)
	b.at("/o/new")
	b.page("org-new")

	// The organization's name is markup; it must show as text.
	const orgName = `Acme <b>Labs</b> & "Friends"`
	b.fill("#name", orgName)
	b.follow(`form[action="/o/new"] button[type=submit]`, 200)
	b.at("/o/acme-b-labs-b-friends/tokens?done=org_created")
	if got := evaluate[string](b, `document.querySelector('.switcher summary').textContent`); !strings.HasSuffix(got, orgName) {
		t.Errorf("organization switcher shows %q, want the name as text", got)
	}
	if n := evaluate[int](b, `document.querySelectorAll('header b, main b').length`); n != 0 {
		t.Errorf("the organization's name made %d <b> elements", n)
	}
	if !b.has(`a[href="/o/acme-b-labs-b-friends/keys"]`) {
		t.Fatal("no key yet: the tokens page should point to the keys page")
	}

	// A real key: the value field is write-only.
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/keys"]`, 200)
	b.page("keys-empty")
	b.fill("#name", "openai-main")
	b.fill("#provider", "openai")
	b.fill("#upstream", up.URL)
	b.fill("#secret", up.Key)
	b.follow(`form[action="/o/acme-b-labs-b-friends/keys"] button[type=submit]`, 200)
	b.at("/o/acme-b-labs-b-friends/keys?done=key_added")
	if html := evaluate[string](b, `document.documentElement.outerHTML`); strings.Contains(html, up.Key) {
		t.Fatal("the keys page holds the key's value")
	}
	if !b.has(`code`) || !strings.Contains(evaluate[string](b, `document.querySelector('table.keys').textContent`), "…"+up.Key[len(up.Key)-4:]) {
		t.Error("the keys page does not show the key's last four characters")
	}
	b.page("keys")

	// A token, created through the form.
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/tokens"]`, 200)
	b.fill("#name", "web app")
	b.fill("#origins", "http://localhost:3000")
	b.follow(`form[action="/o/acme-b-labs-b-friends/tokens"] button[type=submit]`, 200)
	created := evaluate[string](b, `document.getElementById('token-value').value`)
	if !tokenValue.MatchString(created) {
		t.Fatalf("the created token's page shows no token value")
	}
	in.Watch("the token", created)
	b.page("token-created")

	// The copy button: an audited reveal, into the clipboard.
	b.follow(`main a[href="/o/acme-b-labs-b-friends/tokens"]`, 200)
	b.page("tokens")
	b.do(chromedp.Click(chromedp.CSS(`button[aria-label="Copy token web app"]`)))
	b.wait(`document.querySelector('form[data-copy] .copy-status').textContent === 'Copied'`)
	copied := b.clipboard()
	if copied != created {
		t.Fatalf("the copy button copied something else than the token (%d characters)", len(copied))
	}

	// The copied token works through the proxy, against the fake upstream.
	client := in.OpenAI(copied, option.WithMaxRetries(0))
	chat := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini", // the fake upstream answers any model
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello in one word.")},
	}
	if _, err := client.Chat.Completions.New(t.Context(), chat); err != nil {
		t.Fatalf("proxied request with the copied token: %v", err)
	}
	if up.Calls() != 1 {
		t.Fatalf("upstream saw %d calls, want 1", up.Calls())
	}

	// The .env snippet, and its copy button.
	b.do(chromedp.SetValue(chromedp.ID("env-snippet"), "dev"))
	b.follow(`#dotenv button[type=submit]`, 200)
	env := evaluate[string](b, `document.getElementById('env-text').value`)
	if !strings.Contains(env, "OPENAI_API_KEY="+created+"\nOPENAI_BASE_URL="+in.URL+"/openai/v1\n") {
		t.Errorf(".env snippet lacks the token's lines:\n%s", redactTokens(env))
	}
	b.page("env")
	b.do(chromedp.Click(chromedp.CSS(`button[data-copy-from="env-text"]`)))
	b.wait(`document.querySelector('.copy-status').textContent === 'Copied'`)
	if got := b.clipboard(); got != env {
		t.Errorf("the .env copy button copied %d characters, want the %d of the snippet", len(got), len(env))
	}

	// Revoke, with the keyboard: the link opens a modal dialog with focus
	// inside, Escape closes it and gives focus back, and the dialog's
	// button revokes.
	b.follow(`main a[href="/o/acme-b-labs-b-friends/tokens"]`, 200)
	revoke := `a[aria-label="Revoke token web app"]`
	b.do(chromedp.Focus(chromedp.CSS(revoke)), chromedp.KeyEvent("\r"))
	b.wait(`document.getElementById('confirm').open`)
	if !evaluate[bool](b, `document.getElementById('confirm').contains(document.activeElement)`) {
		t.Error("the open dialog does not hold the focus")
	}
	if got := evaluate[string](b, `document.getElementById('confirm-text').textContent`); !strings.Contains(got, "“web app”") {
		t.Errorf("the dialog asks %q, want it to name the token", got)
	}
	b.photo("revoke-dialog")
	b.do(chromedp.KeyEvent("\x1b")) // Escape
	b.wait(`!document.getElementById('confirm').open`)
	if !evaluate[bool](b, `document.activeElement === document.querySelector('`+revoke+`')`) {
		t.Error("closing the dialog did not give the focus back to the revoke link")
	}
	if up.Calls() != 1 || len(b.problems()) != 0 {
		t.Fatalf("after Escape: %d upstream calls, console problems %q", up.Calls(), b.problems())
	}
	b.do(chromedp.KeyEvent("\r"))
	b.wait(`document.getElementById('confirm').open`)
	// Focus starts on the question, so the Enter that opened the dialog
	// pressed nothing; Tab reaches the dialog's revoke button, Enter
	// presses it.
	if got := evaluate[string](b, `document.activeElement.id`); got != "confirm-title" {
		t.Errorf("the dialog opened with the focus on %q, want its question", got)
	}
	b.do(chromedp.KeyEvent("\t"))
	if got := evaluate[string](b, `document.activeElement.textContent`); got != "Revoke token" {
		t.Fatalf("Tab in the dialog focused %q, want its Revoke token button", got)
	}
	b.navigate(chromedp.KeyEvent("\r"), 200)
	b.at("/o/acme-b-labs-b-friends/tokens?done=token_revoked")

	_, err := client.Chat.Completions.New(t.Context(), chat)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("proxied request after the revocation: %v, want 401", err)
	}
	if up.Calls() != 1 {
		t.Errorf("the upstream saw the revoked token's request")
	}

	// The audit log has the story; then the remaining main pages.
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/audit"]`, 200)
	log := evaluate[string](b, `document.querySelector('table.audit').textContent`)
	for _, action := range []string{"org.create", "key.create", "token.create", "token.reveal", "token.revoke"} {
		if !strings.Contains(log, action) {
			t.Errorf("the audit log lacks %s", action)
		}
	}
	b.page("audit")
	b.follow(`nav a[href="/o/acme-b-labs-b-friends/settings"]`, 200)
	b.page("settings")
	b.follow(`.user a[href="/account"]`, 200)
	b.page("account")
	b.follow(`.user form[action="/logout"] button`, 200)
	b.at("/login")
	b.open("/o/acme-b-labs-b-friends/tokens")
	b.at("/login?next=%2Fo%2Facme-b-labs-b-friends%2Ftokens")

	if p := b.problems(); len(p) > 0 {
		t.Errorf("the browser's console reported problems:\n%s", strings.Join(p, "\n"))
	}
	t.Logf("screenshots in %s", b.shots)
}

// chromium finds Debian's Chromium. Without it the test skips, unless
// KVE_REQUIRE_SERVICES=1 (CI), where a missing browser is a failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("KVE_REQUIRE_SERVICES") == "1" {
		t.Fatal("chromium is not installed (apt-get install -y chromium), and KVE_REQUIRE_SERVICES=1 requires it")
	}
	t.Skip("chromium is not installed: apt-get install -y chromium")
	return ""
}

// tab is one headless Chromium tab on a kve instance.
type tab struct {
	t     *testing.T
	ctx   context.Context
	base  string // the instance's URL
	shots string // where screenshots go

	mu     sync.Mutex
	issues []string // console errors and uncaught exceptions
}

func openBrowser(t *testing.T, exe, base string) *tab {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &tab{t: t, base: base, shots: os.Getenv("KVE_SCREENSHOTS")}
	if b.shots == "" {
		b.shots = t.ArtifactDir()
	} else if err := os.MkdirAll(b.shots, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(b.listen))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b.ctx = ctx
	// The first Run starts the browser; it must not have a deadline.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1440, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	// The copy button writes to the clipboard, and the test reads it back.
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    browser.PermissionSettingGranted,
			Origin:     base,
		}); err != nil {
			t.Fatalf("grant %s: %v", name, err)
		}
	}
	return b
}

// listen records what the page reports as errors. It runs on chromedp's
// reading goroutine, so it only appends.
func (b *tab) listen(ev any) {
	var issue string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		issue = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			issue += " " + ev.ExceptionDetails.Exception.Description
		}
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			issue = "console." + string(ev.Type)
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			issue = string(ev.Entry.Level) + ": " + ev.Entry.Text + " " + ev.Entry.URL
		}
	}
	if issue != "" {
		b.mu.Lock()
		b.issues = append(b.issues, redactTokens(issue))
		b.mu.Unlock()
	}
}

func (b *tab) problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.issues...)
}

// do runs actions with a deadline, failing the test on an error.
func (b *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func evaluate[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *tab) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

// navigate runs an action that loads a page, and checks the status of the
// page it ends on (after redirects).
func (b *tab) navigate(action chromedp.Action[chromedp.Void], status int64) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	res, err := chromedp.RunResponse(ctx, action)
	if err != nil {
		b.t.Fatalf("browser: %v", err)
	}
	if res.Status != status {
		b.t.Fatalf("%s: status %d, want %d", res.URL, res.Status, status)
	}
}

// follow clicks a link or a submit button and waits for the next page.
func (b *tab) follow(selector string, status int64) {
	b.t.Helper()
	b.navigate(chromedp.Click(chromedp.CSS(selector)), status)
}

func (b *tab) fill(selector, value string) {
	b.t.Helper()
	b.do(chromedp.SetValue(chromedp.CSS(selector), value))
}

func (b *tab) has(selector string) bool {
	b.t.Helper()
	return evaluate[bool](b, fmt.Sprintf(`document.querySelector(%q) !== null`, selector))
}

// at checks the page's path and query.
func (b *tab) at(want string) {
	b.t.Helper()
	if got := evaluate[string](b, `location.pathname + location.search`); got != want {
		b.t.Fatalf("browser is at %s, want %s", got, want)
	}
}

// wait polls a JavaScript condition.
func (b *tab) wait(cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		b.t.Fatalf("waiting for %s: %v", cond, err)
	}
}

// clipboard reads the system clipboard, as a paste would.
func (b *tab) clipboard() string {
	b.t.Helper()
	return evaluate[string](b, `navigator.clipboard.readText()`)
}

// page checks the current page as a user with assistive technology or a
// phone would meet it, and photographs it at both widths.
func (b *tab) page(name string) {
	b.t.Helper()
	unlabeled := evaluate[[]string](b, `[...document.querySelectorAll('input, select, textarea')]
		.filter(e => e.type !== 'hidden')
		.filter(e => e.labels.length === 0 && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby'))
		.map(e => e.outerHTML)`)
	if len(unlabeled) > 0 {
		b.t.Errorf("%s: fields without a label: %q", name, unlabeled)
	}
	nameless := evaluate[[]string](b, `[...document.querySelectorAll('button, a[href], summary')]
		.filter(e => !e.closest('dialog:not([open])'))
		.filter(e => !(e.getAttribute('aria-label') || e.textContent).trim())
		.map(e => e.outerHTML)`)
	if len(nameless) > 0 {
		b.t.Errorf("%s: controls without a name: %q", name, nameless)
	}
	if n := evaluate[int](b, `document.querySelectorAll('h1').length`); n != 1 {
		b.t.Errorf("%s: %d h1 headings, want 1", name, n)
	}
	b.photo(name)
}

// photo takes a full-page screenshot at 1440 and at 375 pixels wide. At
// 375 the page must not scroll sideways.
func (b *tab) photo(name string) {
	b.t.Helper()
	for _, width := range []int64{1440, 375} {
		b.do(chromedp.EmulateViewport(width, 900))
		if width == 375 {
			if over := evaluate[int](b, `document.documentElement.scrollWidth - window.innerWidth`); over > 0 {
				b.t.Errorf("%s at 375 px: %d px wider than the screen", name, over)
			}
		}
		ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(b.shots, fmt.Sprintf("%s-%d.png", name, width)), png, 0o644); err != nil {
			b.t.Fatal(err)
		}
	}
	b.do(chromedp.EmulateViewport(1440, 900))
}
