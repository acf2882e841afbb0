package kvetest

import (
	"encoding/json"
	"net/http"
	"testing"
)

// NewAnthropic starts a fake Anthropic API: the Messages API as a message
// object or as its event stream (message_start, content_block_start, ping,
// content_block_delta, content_block_stop, message_delta, message_stop, each
// with its event: line), and Anthropic's error JSON for everything else. Like
// the real API it refuses a request without anthropic-version.
func NewAnthropic(t testing.TB) *Upstream {
	t.Helper()
	return newUpstream(t, "anthropic", serveAnthropic)
}

func serveAnthropic(u *Upstream, w http.ResponseWriter, r *http.Request, body []byte) {
	if r.Header.Get("Anthropic-Version") == "" {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "anthropic-version: header is required")
		return
	}
	if r.Method+" "+r.URL.Path != "POST /v1/messages" {
		writeAnthropicError(w, http.StatusNotFound, "not_found_error", "Not Found")
		return
	}
	var req struct {
		Model     string            `json:"model"`
		MaxTokens int               `json:"max_tokens"`
		Messages  []json.RawMessage `json:"messages"`
		Stream    bool              `json:"stream"`
	}
	switch {
	case json.Unmarshal(body, &req) != nil:
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "The request body is not valid JSON.")
	case req.Model == "" || req.MaxTokens < 1 || len(req.Messages) == 0:
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "model, max_tokens and messages are required")
	case req.Stream:
		u.stream(w, r, http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}, "Cache-Control": {"no-cache"}},
			splitEvents(mustRead("anthropic/message_stream.sse")))
	default:
		writeJSON(w, http.StatusOK, mustRead("anthropic/message.json"))
	}
}

// writeAnthropicError answers in Anthropic's error shape.
func writeAnthropicError(w http.ResponseWriter, status int, typ, message string) {
	b, _ := json.Marshal(map[string]any{
		"type":       "error",
		"error":      map[string]string{"type": typ, "message": message},
		"request_id": w.Header().Get("Request-Id"),
	})
	writeJSON(w, status, b)
}
