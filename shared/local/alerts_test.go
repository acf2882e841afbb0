package local_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/alerts"
	"github.com/keyvault-edge/kve/shared/alerts/snsverify"
	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/local"
)

// webhook is a team's alert receiver, written against SNS
// (snsverify.Handler) and pointed at local mode by trusting its
// certificate URL: it confirms its subscription and keeps each verified
// alert with when it arrived.
type webhook struct {
	*httptest.Server
	confirmed chan struct{}
	mu        sync.Mutex
	alerts    []received
	got       chan received
}

type received struct {
	at    time.Time
	alert alerts.Alert
	msg   *snsverify.Message
}

func newWebhook(t *testing.T, kveURL string) *webhook {
	t.Helper()
	wh := &webhook{confirmed: make(chan struct{}, 1), got: make(chan received, 100)}
	v := &snsverify.Verifier{CertURLPrefixes: []string{kveURL + alerts.LocalPath}}
	h := snsverify.Handler(v, func(_ context.Context, m *snsverify.Message) error {
		r := received{at: time.Now(), msg: m}
		if err := json.Unmarshal([]byte(m.Message), &r.alert); err != nil {
			return err
		}
		wh.mu.Lock()
		wh.alerts = append(wh.alerts, r)
		wh.mu.Unlock()
		wh.got <- r
		return nil
	})
	wh.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		typ := r.Header.Get("X-Amz-Sns-Message-Type")
		h.ServeHTTP(w, r)
		if typ == snsverify.TypeSubscriptionConfirmation {
			wh.confirmed <- struct{}{}
		}
	}))
	t.Cleanup(wh.Close)
	return wh
}

func (wh *webhook) all() []received {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return slices.Clone(wh.alerts)
}

// subscribe subscribes wh to the organization's alerts through the API and
// waits until it confirmed.
func (e *env) subscribe(t *testing.T, wh *webhook) {
	t.Helper()
	var sub struct {
		ID        string `json:"id"`
		Confirmed bool   `json:"confirmed"`
	}
	e.inst.Call(t, http.MethodPost, "/api/v1/orgs/"+e.org.Slug+"/alerts/subscriptions",
		map[string]any{"protocol": "http", "endpoint": wh.URL}, http.StatusCreated, &sub)
	select {
	case <-wh.confirmed:
	case <-time.After(10 * time.Second):
		t.Fatal("no subscription confirmation arrived")
	}
	var subs struct {
		Items []struct {
			ID        string `json:"id"`
			Confirmed bool   `json:"confirmed"`
		} `json:"items"`
	}
	e.inst.Call(t, http.MethodGet, "/api/v1/orgs/"+e.org.Slug+"/alerts/subscriptions", nil, http.StatusOK, &subs)
	if len(subs.Items) != 1 || subs.Items[0].ID != sub.ID || !subs.Items[0].Confirmed {
		t.Fatalf("subscriptions after confirmation: %+v", subs.Items)
	}
}

// badOrigin sends a request with an Origin the token does not allow.
func (e *env) badOrigin(t *testing.T, tok kvetest.Token) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.inst.URL+"/openai/v1/chat/completions", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.Value)
	req.Header.Set("Origin", "https://evil.example")
	res, err := e.inst.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("bad origin: %d", res.StatusCode)
	}
}

// TestBreachAlertLatency (SECURITY G8) measures local mode end to end: a
// refused request with a bad Origin, detected, recorded, published and
// delivered to a webhook that verifies the SNS-shaped message. The first
// notification must arrive within 5 s at the 99th percentile. The figure
// is in shared/alerts/README.md:
//
//	go test -count=1 -run TestBreachAlertLatency -v ./shared/local/
func TestBreachAlertLatency(t *testing.T) {
	e := newEnv(t)
	wh := newWebhook(t, e.inst.URL)
	e.subscribe(t, wh)
	const samples = 30
	var lat []time.Duration
	for range samples {
		tok := e.token(t, map[string]any{"env": "prd", "origins": []string{"https://app.example.com"}})
		start := time.Now()
		e.badOrigin(t, tok)
		select {
		case r := <-wh.got:
			if r.alert.Token == nil || r.alert.Token.ID != tok.ID || r.alert.Type != alerts.OriginNotAllowed {
				t.Fatalf("alert %+v, want origin_not_allowed on %s", r.alert, tok.ID)
			}
			lat = append(lat, r.at.Sub(start))
		case <-time.After(10 * time.Second):
			t.Fatal("no alert within 10 s")
		}
	}
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[(len(lat)*99+99)/100-1]
	t.Logf("first notification after the offending request, %d samples: p50 %v, p99 %v, max %v",
		samples, p50.Round(time.Millisecond), p99.Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	if p99 > 5*time.Second {
		t.Errorf("p99 %v, want at most 5 s", p99)
	}
}

// TestBreachFloodLocal (SECURITY T18): a flood of refused requests on one
// token is one incident with a count in the breach alert log, and one
// notification; the alert carries what the log shows, with the dashboard
// link, and no token value.
func TestBreachFloodLocal(t *testing.T) {
	e := newEnv(t)
	wh := newWebhook(t, e.inst.URL)
	e.subscribe(t, wh)
	tok := e.token(t, map[string]any{"env": "prd", "origins": []string{"https://app.example.com"}})
	const flood = 500
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			for range flood / 10 {
				e.badOrigin(t, tok)
			}
		})
	}
	wg.Wait()
	type incident struct {
		ID    string `json:"id"`
		Type  string `json:"type"`
		Count int64  `json:"count"`
		Token struct {
			ID string `json:"id"`
		} `json:"token"`
	}
	var log struct {
		Items []incident `json:"items"`
	}
	kvetest.Eventually(t, 10*time.Second, "the whole flood counted in one incident", func() bool {
		e.inst.Call(t, http.MethodGet, "/api/v1/orgs/"+e.org.Slug+"/alerts", nil, http.StatusOK, &log)
		for _, inc := range log.Items {
			if inc.Type == "origin_not_allowed" && inc.Count == flood {
				return true
			}
		}
		return false
	})
	// The flood was also a usage spike: that alert may come first.
	deadline := time.After(10 * time.Second)
	for first := false; !first; {
		select {
		case r := <-wh.got:
			first = r.alert.Type == alerts.OriginNotAllowed
		case <-deadline:
			t.Fatal("no origin_not_allowed alert")
		}
	}
	var origin []received
	for _, r := range wh.all() {
		if r.alert.Type == alerts.OriginNotAllowed {
			origin = append(origin, r)
		}
	}
	if len(origin) != 1 {
		t.Fatalf("%d origin_not_allowed notifications for one flood, want 1", len(origin))
	}
	a := origin[0].alert
	if a.Token.ID != tok.ID || a.Env != "prd" || a.Sample == nil || a.Sample.Origin != "https://evil.example" ||
		a.DashboardURL != e.inst.URL+"/o/"+e.org.Slug+"/alerts?incident="+a.IncidentID ||
		origin[0].msg.MessageAttributes["org"].Value != e.org.ID {
		t.Errorf("alert %+v", a)
	}
}

func TestLeakSuspendEnvsFlag(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []kve.Env
		err  bool
	}{
		{nil, []kve.Env{kve.EnvStg, kve.EnvPrd}, false},
		{[]string{"--leak-suspend-envs", "prd"}, []kve.Env{kve.EnvPrd}, false},
		{[]string{"--leak-suspend-envs", "none"}, []kve.Env{}, false},
		{[]string{"--leak-suspend-envs", "dev,prod"}, nil, true},
	} {
		c, err := local.ParseConfig(tt.args, func(string) string { return "" }, io.Discard)
		if (err != nil) != tt.err || !tt.err && !slices.Equal(c.LeakSuspendEnvs, tt.want) {
			t.Errorf("%v: %v, %v; want %v", tt.args, c.LeakSuspendEnvs, err, tt.want)
		}
	}
}
