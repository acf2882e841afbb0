package manage_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/manage"
	"github.com/keyvault-edge/kve/shared/manage/managetest"
)

func wantKind(t *testing.T, err error, kind kve.Kind) {
	t.Helper()
	if kve.KindOf(err) != kind {
		t.Fatalf("error = %v (kind %v), want kind %v", err, kve.KindOf(err), kind)
	}
}

func TestSetup(t *testing.T) {
	e := managetest.New(t)
	ctx := t.Context()
	valid := manage.SetupInput{Code: managetest.SetupCode, Email: "owner@example.com", Name: "Olga", Password: managetest.OwnerPassword}

	bad := []struct {
		name string
		edit func(*manage.SetupInput)
		kind kve.Kind
	}{
		{"wrong code", func(in *manage.SetupInput) { in.Code = "kve-setup-FAKE-0123456788" }, kve.KindUnauthenticated},
		{"empty code", func(in *manage.SetupInput) { in.Code = "" }, kve.KindUnauthenticated},
		{"code prefix", func(in *manage.SetupInput) { in.Code = managetest.SetupCode[:10] }, kve.KindUnauthenticated},
		{"short password", func(in *manage.SetupInput) { in.Password = "short-pass" }, kve.KindInvalid},
		{"bad email", func(in *manage.SetupInput) { in.Email = "Olga <owner@example.com>" }, kve.KindInvalid},
		{"no name", func(in *manage.SetupInput) { in.Name = " " }, kve.KindInvalid},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			in := valid
			tt.edit(&in)
			_, _, err := e.Service.Setup(ctx, in, "192.0.2.1")
			wantKind(t, err, tt.kind)
		})
	}
	if done, _ := e.Store.SetupDone(ctx); done {
		t.Fatal("a refused setup completed it")
	}

	u, c, err := e.Service.Setup(ctx, valid, "192.0.2.1")
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	if !kve.LooksLikeAPIToken(c.Value.Reveal()) {
		t.Errorf("setup credential %q is not a kvm_ token", kve.TokenHint(c.Value))
	}
	if diff := cmp.Diff(managetest.Start.Add(90*24*time.Hour), c.Session.ExpiresAt); diff != "" {
		t.Errorf("API token expiry (-want +got):\n%s", diff)
	}
	p, err := e.Service.Authenticate(ctx, kve.SessionAPI, c.Value, "192.0.2.9")
	if err != nil {
		t.Fatalf("authenticate setup token: %v", err)
	}
	if diff := cmp.Diff(kve.Actor{UserID: u.ID, Email: "owner@example.com", IP: "192.0.2.9"}, p.Actor); diff != "" {
		t.Errorf("principal (-want +got):\n%s", diff)
	}

	t.Run("single use", func(t *testing.T) {
		_, _, err := e.Service.Setup(ctx, valid, "192.0.2.1")
		wantKind(t, err, kve.KindConflict)
		if got := kve.MessageOf(err); got != "setup is already done" {
			t.Errorf("message = %q", got)
		}
	})
}

func TestSetupDone(t *testing.T) {
	e := managetest.New(t)
	if done, err := e.Service.SetupDone(t.Context()); err != nil || done {
		t.Fatalf("SetupDone on a fresh install = %v, %v; want false", done, err)
	}
	e.Setup(t)
	if done, err := e.Service.SetupDone(t.Context()); err != nil || !done {
		t.Errorf("SetupDone after setup = %v, %v; want true", done, err)
	}
}

func TestSetupNotConfigured(t *testing.T) {
	e := managetest.New(t, func(c *manage.Config) { c.SetupCode = nil })
	_, _, err := e.Service.Setup(t.Context(), manage.SetupInput{Code: "anything"}, "192.0.2.1")
	wantKind(t, err, kve.KindUnavailable)
}

func TestSetupCodeGuessingIsThrottledPerIP(t *testing.T) {
	e := managetest.New(t)
	in := manage.SetupInput{Code: "kve-setup-FAKE-wrong", Email: "owner@example.com", Name: "Olga", Password: managetest.OwnerPassword}
	for i := range 100 {
		_, _, err := e.Service.Setup(t.Context(), in, "198.51.100.7")
		if kve.KindOf(err) != kve.KindUnauthenticated {
			t.Fatalf("attempt %d: %v, want KindUnauthenticated", i+1, err)
		}
	}
	in.Code = managetest.SetupCode
	_, _, err := e.Service.Setup(t.Context(), in, "198.51.100.7")
	wantKind(t, err, kve.KindRateLimited)
	if _, _, err := e.Service.Setup(t.Context(), in, "198.51.100.8"); err != nil {
		t.Errorf("setup from another address: %v", err)
	}
}

func TestLogin(t *testing.T) {
	e := managetest.New(t)
	owner := e.Setup(t)
	ctx := t.Context()

	c, err := e.Service.Login(ctx, manage.LoginInput{Email: " OWNER@example.com", Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionAPI)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	p, err := e.Service.Authenticate(ctx, kve.SessionAPI, c.Value, "192.0.2.1")
	if err != nil || p.UserID != owner.ID {
		t.Fatalf("authenticate login token: %v, user %s, want %s", err, p.UserID, owner.ID)
	}

	t.Run("unknown email and wrong password answer alike", func(t *testing.T) {
		_, errUnknown := e.Service.Login(ctx, manage.LoginInput{Email: "nobody@example.com", Password: managetest.OwnerPassword}, "192.0.2.2", kve.SessionAPI)
		_, errWrong := e.Service.Login(ctx, manage.LoginInput{Email: "owner@example.com", Password: "owner-password-FAKE-2"}, "192.0.2.3", kve.SessionAPI)
		wantKind(t, errUnknown, kve.KindUnauthenticated)
		describe := func(err error) [3]string {
			return [3]string{kve.KindOf(err).String(), kve.CodeOf(err), kve.MessageOf(err)}
		}
		if diff := cmp.Diff(describe(errUnknown), describe(errWrong)); diff != "" {
			t.Errorf("unknown email vs wrong password (-unknown +wrong):\n%s", diff)
		}
		if errUnknown.Error() != errWrong.Error() {
			t.Errorf("error texts differ: %q vs %q", errUnknown, errWrong)
		}
	})

	t.Run("browser session", func(t *testing.T) {
		c, err := e.Service.Login(ctx, manage.LoginInput{Email: "owner@example.com", Password: managetest.OwnerPassword}, "192.0.2.1", kve.SessionBrowser)
		if err != nil {
			t.Fatal(err)
		}
		if kve.LooksLikeAPIToken(c.Value.Reveal()) || c.Session.Kind != kve.SessionBrowser {
			t.Errorf("browser login gave a %s credential", c.Session.Kind)
		}
		if _, err := e.Service.Authenticate(ctx, kve.SessionAPI, c.Value, "192.0.2.1"); kve.KindOf(err) != kve.KindUnauthenticated {
			t.Errorf("browser session used as an API token: %v, want KindUnauthenticated", err)
		}
	})
}

func TestLoginThrottlesAccount(t *testing.T) {
	e := managetest.New(t)
	e.Setup(t)
	ctx := t.Context()
	wrong := manage.LoginInput{Email: "owner@example.com", Password: "owner-password-FAKE-2"}
	for i := range 10 {
		// Different addresses: the account's own limit is what trips.
		_, err := e.Service.Login(ctx, wrong, "203.0.113."+string(rune('1'+i%9)), kve.SessionAPI)
		if kve.KindOf(err) != kve.KindUnauthenticated {
			t.Fatalf("failure %d: %v, want KindUnauthenticated", i+1, err)
		}
	}
	right := manage.LoginInput{Email: "owner@example.com", Password: managetest.OwnerPassword}
	_, err := e.Service.Login(ctx, right, "192.0.2.50", kve.SessionAPI)
	wantKind(t, err, kve.KindRateLimited)
	after, ok := manage.RetryAfter(err)
	if !ok || after <= 0 || after > 90*time.Second {
		t.Errorf("RetryAfter = %v, %v; want (0, 90s]: one of 10 attempts refills every 90s", after, ok)
	}

	// Unknown accounts are throttled the same way, so the limit tells nothing.
	for range 10 {
		e.Service.Login(ctx, manage.LoginInput{Email: "ghost@example.com", Password: "whatever-FAKE-pass"}, "192.0.2.60", kve.SessionAPI)
	}
	_, err = e.Service.Login(ctx, manage.LoginInput{Email: "ghost@example.com", Password: "whatever-FAKE-pass"}, "192.0.2.61", kve.SessionAPI)
	wantKind(t, err, kve.KindRateLimited)

	e.Clock.Add(after)
	if _, err := e.Service.Login(ctx, right, "192.0.2.50", kve.SessionAPI); err != nil {
		t.Errorf("login after waiting %v: %v", after, err)
	}
}

func TestLoginThrottlesClientIP(t *testing.T) {
	e := managetest.New(t)
	e.Setup(t)
	ctx := t.Context()
	for i := range 100 {
		email := "user" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "@example.com"
		_, err := e.Service.Login(ctx, manage.LoginInput{Email: email, Password: "whatever-FAKE-pass"}, "198.51.100.1", kve.SessionAPI)
		if kve.KindOf(err) != kve.KindUnauthenticated {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	right := manage.LoginInput{Email: "owner@example.com", Password: managetest.OwnerPassword}
	_, err := e.Service.Login(ctx, right, "198.51.100.1", kve.SessionAPI)
	wantKind(t, err, kve.KindRateLimited)
	if _, err := e.Service.Login(ctx, right, "198.51.100.2", kve.SessionAPI); err != nil {
		t.Errorf("login from another address: %v", err)
	}
}

func TestAuthenticate(t *testing.T) {
	e := managetest.New(t)
	e.Setup(t)
	ctx := t.Context()
	login := func(kind kve.SessionKind) kve.Secret {
		t.Helper()
		c, err := e.Service.Login(ctx, manage.LoginInput{Email: "owner@example.com", Password: managetest.OwnerPassword}, "192.0.2.1", kind)
		if err != nil {
			t.Fatal(err)
		}
		return c.Value
	}
	auth := func(kind kve.SessionKind, v kve.Secret) error {
		_, err := e.Service.Authenticate(ctx, kind, v, "192.0.2.1")
		return err
	}

	t.Run("malformed and unknown", func(t *testing.T) {
		for _, v := range []kve.Secret{"", "kvm_short", "Bearer kvm_x", kve.NewAPIToken(), kve.NewTokenValue(kve.TokenShared, kve.EnvDev)} {
			wantKind(t, auth(kve.SessionAPI, v), kve.KindUnauthenticated)
		}
		wantKind(t, auth(kve.SessionBrowser, kve.NewSessionID()), kve.KindUnauthenticated)
		wantKind(t, auth(kve.SessionBrowser, "short"), kve.KindUnauthenticated)
	})

	t.Run("browser session idles out after 30 minutes", func(t *testing.T) {
		v := login(kve.SessionBrowser)
		e.Clock.Add(29 * time.Minute)
		if err := auth(kve.SessionBrowser, v); err != nil {
			t.Fatalf("after 29 minutes: %v", err)
		}
		e.Clock.Add(29 * time.Minute) // 29 minutes since the last use
		if err := auth(kve.SessionBrowser, v); err != nil {
			t.Fatalf("29 minutes after the last use: %v", err)
		}
		e.Clock.Add(30 * time.Minute)
		wantKind(t, auth(kve.SessionBrowser, v), kve.KindUnauthenticated)
	})

	t.Run("browser session ends after 12 hours however busy", func(t *testing.T) {
		v := login(kve.SessionBrowser)
		for range 11 * 4 {
			e.Clock.Add(15 * time.Minute)
			if err := auth(kve.SessionBrowser, v); err != nil {
				t.Fatalf("within 12 hours: %v", err)
			}
		}
		e.Clock.Add(time.Hour)
		wantKind(t, auth(kve.SessionBrowser, v), kve.KindUnauthenticated)
	})

	t.Run("API token expires after 90 days", func(t *testing.T) {
		v := login(kve.SessionAPI)
		e.Clock.Add(89 * 24 * time.Hour)
		if err := auth(kve.SessionAPI, v); err != nil {
			t.Fatalf("after 89 days: %v", err)
		}
		e.Clock.Add(24 * time.Hour)
		wantKind(t, auth(kve.SessionAPI, v), kve.KindUnauthenticated)
	})
}

// TestLoginThrottleHoldsUnderConcurrency (SECURITY T34): 200 parallel
// wrong logins for one account get at most the account's 10 attempts; the
// rest are refused before any password is checked.
func TestLoginThrottleHoldsUnderConcurrency(t *testing.T) {
	e := managetest.New(t)
	e.Setup(t)
	ctx := t.Context()
	wrong := manage.LoginInput{Email: "owner@example.com", Password: "owner-password-FAKE-2"}
	var wg sync.WaitGroup
	var checked, limited atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			_, err := e.Service.Login(ctx, wrong, fmt.Sprintf("198.51.100.%d", i%250), kve.SessionAPI)
			switch kve.KindOf(err) {
			case kve.KindUnauthenticated:
				checked.Add(1)
			case kve.KindRateLimited:
				limited.Add(1)
			default:
				t.Errorf("login: %v", err)
			}
		})
	}
	wg.Wait()
	if checked.Load() > 10 || checked.Load()+limited.Load() != 200 {
		t.Errorf("%d passwords checked, %d throttled: want at most 10 checked", checked.Load(), limited.Load())
	}
	// A success gives its attempt back.
	e2 := managetest.New(t)
	e2.Setup(t)
	right := manage.LoginInput{Email: "owner@example.com", Password: managetest.OwnerPassword}
	for i := range 20 {
		if _, err := e2.Service.Login(ctx, right, "192.0.2.70", kve.SessionAPI); err != nil {
			t.Fatalf("successful login %d throttled: %v", i+1, err)
		}
	}
}
