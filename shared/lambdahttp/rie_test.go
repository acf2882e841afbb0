package lambdahttp

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/lambdahttp/rie"
)

// TestEmulator invokes the streaming function through the Lambda Runtime
// Interface Emulator, the Runtime API implementation AWS publishes. It does
// not stream, so the whole framed response (JSON head, eight NUL bytes,
// body) comes back at once.
func TestEmulator(t *testing.T) {
	em := rie.Start(t, buildStreamfn(t, "linux"))
	raw, err := em.Invoke(t.Context(), fixture(t, "proxy-chat-stream.json", placeholder))
	if err != nil {
		t.Fatalf("%v: %q", err, raw)
	}
	head, body, err := splitStream(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(streamfnHead, head); diff != "" {
		t.Errorf("head (-want +got):\n%s", diff)
	}
	if want := "data: {\"n\":1}\n\ndata: {\"n\":2}\n\ndata: {\"n\":3}\n\ndata: [DONE]\n\n"; string(body) != want {
		t.Errorf("body = %q, want %q", body, want)
	}
}
