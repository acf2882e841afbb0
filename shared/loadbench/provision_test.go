package loadbench

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyvault-edge/kve/shared/kvetest"
)

// TestProvisionAndLoadThroughKve is the benchmark's kve target in small:
// a fresh local mode provisioned through its management API, then driven
// by the load generator with both tokens. The upstream refuses any request
// without the real key, so zero errors means kve swapped it every time.
func TestProvisionAndLoadThroughKve(t *testing.T) {
	up := newUpstream(t)
	in := kvetest.Start(t)
	tokens, err := Provision(t.Context(), http.DefaultClient, in.URL, in.SetupCode, up.URL, testKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"limits off": tokens.Off, "limits on": tokens.On} {
		t.Run(name, func(t *testing.T) {
			if !strings.HasPrefix(tok, "kve_hb_prd_") {
				t.Fatalf("token %q… is not a shared prd token", tok[:min(len(tok), 11)])
			}
			for _, body := range []string{ChatRequest, StreamRequest} {
				res, err := Load{URL: in.URL + "/openai/v1/chat/completions", Header: bearer(tok), Body: body,
					Conns: 2, Duration: 200 * time.Millisecond}.Run(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if res.Errors != 0 || res.Requests == 0 {
					t.Fatalf("%d requests, %d errors, first: %s", res.Requests, res.Errors, res.FirstErr)
				}
			}
		})
	}
}

// TestProvisionNeedsTheCode: a wrong setup code stops provisioning with the
// API's answer.
func TestProvisionNeedsTheCode(t *testing.T) {
	in := kvetest.Start(t)
	_, err := Provision(t.Context(), http.DefaultClient, in.URL, "WRONG-CODE", "http://127.0.0.1:9", testKey)
	if err == nil || !strings.Contains(err.Error(), "/api/v1/setup") {
		t.Fatalf("err = %v, want the setup call's error", err)
	}
}
