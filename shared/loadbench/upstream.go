package loadbench

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// ChatRequest is the body of an OpenAI SDK chat completion request.
const ChatRequest = `{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about reverse proxies."}],"model":"gpt-4o-mini","temperature":0.7}`

// StreamRequest asks for the same completion as a stream with usage.
const StreamRequest = `{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Write a haiku about reverse proxies."}],"model":"gpt-4o-mini","temperature":0.7,"stream":true,"stream_options":{"include_usage":true}}`

// Completion is the chat completion the upstream answers: a real response's
// shape and size (672 B).
const Completion = `{"id":"chatcmpl-BenchFAKE0123456789abcdefghij","object":"chat.completion","created":1764244800,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Requests pass through,\nkeys swapped in the quiet dark,\nanswers stream back home.","refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":28,"completion_tokens":19,"total_tokens":47,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"service_tier":"default","system_fingerprint":"fp_0123456789"}`

// Stream is the same completion as OpenAI streams it: a role chunk, one
// chunk per word, the finish chunk, the usage chunk and [DONE] (17 events,
// 4.9 KB).
var Stream = func() []string {
	chunk := func(delta, finish string) string {
		return `data: {"id":"chatcmpl-BenchFAKE0123456789abcdefghij","object":"chat.completion.chunk","created":1764244800,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0123456789","choices":[{"index":0,"delta":` +
			delta + `,"logprobs":null,"finish_reason":` + finish + `}],"usage":null}` + "\n\n"
	}
	s := []string{chunk(`{"role":"assistant","content":"","refusal":null}`, "null")}
	for _, w := range strings.Fields("Requests pass through, keys swapped in the quiet dark, answers stream back home.") {
		s = append(s, chunk(`{"content":"`+w+` "}`, "null"))
	}
	return append(s, chunk(`{}`, `"stop"`),
		`data: {"id":"chatcmpl-BenchFAKE0123456789abcdefghij","object":"chat.completion.chunk","created":1764244800,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0123456789","choices":[],"usage":{"prompt_tokens":28,"completion_tokens":19,"total_tokens":47}}`+"\n\n",
		"data: [DONE]\n\n")
}()

// unauthorized is OpenAI's answer to a wrong key.
const unauthorized = `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`

// Upstream is the fast upstream of the benchmark: a fake OpenAI API that
// answers any POST with Completion, or with Stream (each event flushed on
// its own) when the body asks for "stream":true. It checks the key: a
// request without "Authorization: Bearer <key>" gets OpenAI's 401, which the
// load generator counts as an error, so a proxy that does not swap the key
// cannot post figures.
func Upstream(key string) http.Handler {
	want := "Bearer " + key
	completionLen := strconv.Itoa(len(Completion))
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := bufs.Get().(*bytes.Buffer)
		defer bufs.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(r.Body); err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		if r.Header.Get("Authorization") != want {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, unauthorized)
			return
		}
		h["X-Request-Id"] = []string{"req_bench"}
		h["Openai-Processing-Ms"] = []string{"1"}
		if !bytes.Contains(buf.Bytes(), []byte(`"stream":true`)) {
			h["Content-Length"] = []string{completionLen}
			io.WriteString(w, Completion)
			return
		}
		h["Content-Type"] = []string{"text/event-stream; charset=utf-8"}
		h["Cache-Control"] = []string{"no-cache"}
		f := w.(http.Flusher)
		for _, ev := range Stream {
			if _, err := io.WriteString(w, ev); err != nil {
				return
			}
			f.Flush()
		}
	})
}
