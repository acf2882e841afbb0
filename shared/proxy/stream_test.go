package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/keyvault-edge/kve/shared/kve"
)

// sseUpstream streams events, writing event i+1 only after next receives a
// value: the test proves per-event delivery by reading event i through the
// proxy before releasing event i+1 (no timing involved).
func sseUpstream(events []string, next <-chan struct{}) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		f := w.(http.Flusher)
		f.Flush()
		for i, ev := range events {
			if i > 0 {
				select {
				case <-next:
				case <-r.Context().Done():
					return
				}
			}
			io.WriteString(w, ev)
			f.Flush()
		}
	}
}

func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			if b.Len() == 0 {
				t.Fatalf("stream ended: %v", err)
			}
			return b.String()
		}
		if line == "\n" {
			return b.String()
		}
	}
}

var openaiStream = []string{
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}],\"usage\":null}\n\n",
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}],\"usage\":null}\n\n",
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":5,\"total_tokens\":17,\"prompt_tokens_details\":{\"cached_tokens\":4},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
	"data: [DONE]\n\n",
}

// TestSSEEventByEvent: each upstream event reaches the client on its own,
// and usage is read from the stream as it passes.
func TestSSEEventByEvent(t *testing.T) {
	next := make(chan struct{})
	e := newEnv(t, sseUpstream(openaiStream, next))
	v := e.token("openai", nil)
	req, _ := http.NewRequest("POST", e.srv.URL+"/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+v)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	br := bufio.NewReader(res.Body)
	for i, want := range openaiStream {
		if got := readEvent(t, br); got != want {
			t.Fatalf("event %d = %q, want %q", i, got, want)
		}
		if i < len(openaiStream)-1 {
			next <- struct{}{} // release the next event only now
		}
	}
	u := e.rec.last(t)
	want := kve.Usage{Model: "gpt-4o-mini", PromptTokens: 12, CompletionTokens: 5, CachedTokens: 4, ReasoningTokens: 1, Status: 200}
	if u.Model != want.Model || u.PromptTokens != 12 || u.CompletionTokens != 5 || u.CachedTokens != 4 || u.ReasoningTokens != 1 || u.Estimated {
		t.Errorf("usage = %+v", u)
	}
	if u.BytesOut != int64(len(strings.Join(openaiStream, ""))) {
		t.Errorf("bytes out = %d", u.BytesOut)
	}
}

// TestUsageFormats reads usage from each provider's JSON and SSE shapes.
func TestUsageFormats(t *testing.T) {
	tests := []struct {
		name     string
		provider string
		path     string
		ct       string
		body     string
		want     kve.Usage
	}{
		{"openai json", "openai", "/openai/v1/chat/completions", "application/json",
			`{"id":"x","model":"gpt-4o","choices":[],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,"prompt_tokens_details":{"cached_tokens":50}},"service_tier":"default"}`,
			kve.Usage{Model: "gpt-4o", PromptTokens: 100, CompletionTokens: 20, CachedTokens: 50}},
		{"anthropic json", "anthropic", "/anthropic/v1/messages", "application/json",
			`{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","usage":{"input_tokens":30,"cache_read_input_tokens":10,"output_tokens":7}}`,
			kve.Usage{Model: "claude-sonnet-4-5", PromptTokens: 40, CompletionTokens: 7, CachedTokens: 10}},
		{"openai json over the tail size", "openai", "/openai/v1/chat/completions", "application/json",
			`{"id":"x","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"` + strings.Repeat("long answer ", 2000) +
				`"}}],"usage":{"prompt_tokens":100,"completion_tokens":6000,"prompt_tokens_details":{"cached_tokens":50},"completion_tokens_details":{"reasoning_tokens":7}},"system_fingerprint":"fp_1"}`,
			kve.Usage{Model: "gpt-4o", PromptTokens: 100, CompletionTokens: 6000, CachedTokens: 50, ReasoningTokens: 7}},
		{"anthropic json with cache writes", "anthropic", "/anthropic/v1/messages", "application/json",
			`{"id":"msg_2","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi"}],"usage":{"input_tokens":3,"cache_creation_input_tokens":2000,"cache_read_input_tokens":500,"output_tokens":9,"cache_creation":{"ephemeral_5m_input_tokens":2000,"ephemeral_1h_input_tokens":0}}}`,
			kve.Usage{Model: "claude-sonnet-4-5", PromptTokens: 2503, CompletionTokens: 9, CachedTokens: 500}},
		{"anthropic sse", "anthropic", "/anthropic/v1/messages", "text/event-stream",
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-haiku-4-5\",\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n" +
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n" +
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n" +
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
			kve.Usage{Model: "claude-haiku-4-5", PromptTokens: 25, CompletionTokens: 15}},
		{"openai responses sse", "openai", "/openai/v1/responses", "text/event-stream",
			"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-5-2025-08-07\",\"output\":[],\"usage\":null}}\n\n" +
				"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\"Hello\"}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"gpt-5-2025-08-07\",\"output\":[{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello\"}]}],\"usage\":{\"input_tokens\":20,\"input_tokens_details\":{\"cached_tokens\":5},\"output_tokens\":30,\"output_tokens_details\":{\"reasoning_tokens\":10},\"total_tokens\":50}}}\n\n",
			kve.Usage{Model: "gpt-5-2025-08-07", PromptTokens: 20, CompletionTokens: 30, CachedTokens: 5, ReasoningTokens: 10}},
		{"gemini json", "gemini", "/gemini/v1beta/models/gemini-2.0-flash:generateContent", "application/json",
			`{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"totalTokenCount":11},"modelVersion":"gemini-2.0-flash"}`,
			kve.Usage{Model: "gemini-2.0-flash", PromptTokens: 8, CompletionTokens: 3}},
		{"gemini sse", "gemini", "/gemini/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "text/event-stream",
			"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hel\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":1},\"modelVersion\":\"gemini-2.0-flash\"}\r\n\r\n" +
				"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"lo\"}]}}],\"usageMetadata\":{\"promptTokenCount\":8,\"candidatesTokenCount\":4,\"thoughtsTokenCount\":2},\"modelVersion\":\"gemini-2.0-flash\"}\r\n\r\n",
			kve.Usage{Model: "gemini-2.0-flash", PromptTokens: 8, CompletionTokens: 6, ReasoningTokens: 2}},
		{"openai stream without usage", "openai", "/openai/v1/chat/completions", "text/event-stream",
			"data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hello world!\"}}]}\n\ndata: [DONE]\n\n",
			kve.Usage{Model: "gpt-4o-mini", CompletionTokens: 3, Estimated: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ct)
				io.WriteString(w, tt.body)
			})
			v := e.token(tt.provider, nil)
			h := bearerHeader(v)
			if tt.provider == "gemini" {
				h = http.Header{"X-Goog-Api-Key": {v}}
			}
			res, body := e.do("POST", tt.path, `{"model":"`+tt.want.Model+`"}`, h)
			if res.StatusCode != 200 || body != tt.body {
				t.Fatalf("status %d, body changed: %v", res.StatusCode, body != tt.body)
			}
			u := e.rec.last(t)
			if u.Model != tt.want.Model || u.PromptTokens != tt.want.PromptTokens && !tt.want.Estimated ||
				u.CompletionTokens != tt.want.CompletionTokens || u.CachedTokens != tt.want.CachedTokens ||
				u.ReasoningTokens != tt.want.ReasoningTokens || u.Estimated != tt.want.Estimated {
				t.Errorf("usage = model %q prompt %d completion %d cached %d reasoning %d estimated %v, want %+v",
					u.Model, u.PromptTokens, u.CompletionTokens, u.CachedTokens, u.ReasoningTokens, u.Estimated, tt.want)
			}
		})
	}
}

// TestClientDisconnect (SECURITY T44): a client that leaves mid-stream
// cancels the upstream request at once, and the request is still recorded,
// marked as cut by the client; no goroutine outlives it.
func TestClientDisconnect(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	upstreamGone := make(chan struct{})
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"tok%d\"}}]}\n\n", i); err != nil {
				break
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				close(upstreamGone)
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	})
	v := e.token("openai", nil)
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "POST", e.srv.URL+"/openai/v1/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer "+v)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(res.Body)
	for range 3 {
		readEvent(t, br)
	}
	cancel()
	res.Body.Close()
	select {
	case <-upstreamGone:
	case <-time.After(time.Second):
		t.Fatal("upstream request not cancelled within 1 s of the client leaving")
	}
	u := e.rec.last(t)
	if !u.ClientAborted || u.Status != 200 || u.CompletionTokens == 0 || !u.Estimated {
		t.Errorf("record = aborted %v status %d completion %d estimated %v", u.ClientAborted, u.Status, u.CompletionTokens, u.Estimated)
	}
	e.srv.Close()
	e.up.Close()
	e.srv.Client().CloseIdleConnections()
}

// TestSlowSteadyStreamOutlivesIdle: a stream that keeps sending outlives the
// idle timeout however long it runs; one that goes silent is cut with a
// well-formed SSE error event (SECURITY T53).
func TestSlowSteadyStreamOutlivesIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	events := 12 // 12 × 100 ms = 4 × idle
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range events {
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(idle / 3) // the steady pace of a slow model
		}
		io.WriteString(w, "data: [DONE]\n\n")
	}, withConfig(func(c *Config) { c.Timeouts.StreamIdle = idle }))
	v := e.token("openai", nil)
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Contains(body, "event: error") {
		t.Fatalf("slow stream cut: %q", body)
	}

	stall := make(chan struct{})
	defer close(stall)
	e2 := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n")
		w.(http.Flusher).Flush()
		select { // then silence
		case <-stall:
		case <-r.Context().Done():
		}
	}, withConfig(func(c *Config) { c.Timeouts.StreamIdle = idle }))
	v2 := e2.token("openai", nil)
	res, body = e2.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v2))
	if res.StatusCode != 200 || !strings.Contains(body, "event: error\ndata: {\"error\"") || !strings.HasSuffix(body, "}}\n\n") {
		t.Fatalf("stalled stream: %q", body)
	}
	if u := e2.rec.last(t); u.Reason != "upstream_timeout" {
		t.Errorf("recorded reason %q", u.Reason)
	}
}

// TestTotalTimeout (SECURITY G13): the whole exchange is bounded however
// steadily it goes: an answer slower than the total is a 504, and a
// stream that outlasts it, never idle, is cut with an SSE error event.
func TestTotalTimeout(t *testing.T) {
	const total = 400 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	slow := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		select { // no answer within the total; the response-header timeout is longer
		case <-release:
		case <-r.Context().Done():
		}
	}, withConfig(func(c *Config) { c.Timeouts.Total, c.Timeouts.ResponseHeader = total, time.Minute }))
	began := time.Now()
	res, body := slow.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(slow.token("openai", nil)))
	if took := time.Since(began); res.StatusCode != 504 || errorCode(t, body) != "upstream_timeout" || took > 10*total {
		t.Errorf("an answer slower than the total: %d after %v: %s", res.StatusCode, took, body)
	}

	steady := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; r.Context().Err() == nil && i < 100; i++ { // 100 × 50 ms, far past the total
			fmt.Fprintf(w, "data: {\"choices\":[{\"delta\":{\"content\":\"%d\"}}]}\n\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(total / 8)
		}
	}, withConfig(func(c *Config) { c.Timeouts.Total, c.Timeouts.StreamIdle = total, time.Minute }))
	began = time.Now()
	res, body = steady.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(steady.token("openai", nil)))
	if took := time.Since(began); res.StatusCode != 200 || !strings.Contains(body, "event: error\ndata: {\"error\"") || took > 10*total {
		t.Errorf("a stream past the total: %d after %v, ending %q", res.StatusCode, took, body[max(0, len(body)-120):])
	}
	if u := steady.rec.last(t); u.Reason != "upstream_timeout" {
		t.Errorf("recorded reason %q, want upstream_timeout", u.Reason)
	}
}

// TestUpstreamResetMidStream: an upstream that breaks off mid-stream leaves
// the client a well-formed SSE error event.
func TestUpstreamResetMidStream(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"delta\":{\"content\":\"par")
		w.(http.Flusher).Flush()
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	v := e.token("openai", nil)
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 200 || !strings.Contains(body, "\n\nevent: error\ndata: ") {
		t.Fatalf("got %d %q", res.StatusCode, body)
	}
	if u := e.rec.last(t); u.Reason != "upstream_unavailable" {
		t.Errorf("recorded reason %q", u.Reason)
	}
}

// TestHugeSSELine: a line of 10 MB without a newline passes through, and the
// meter's memory stays bounded by its line cap.
func TestHugeSSELine(t *testing.T) {
	chunk := strings.Repeat("z", 64<<10)
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: ")
		for range 160 { // 10 MiB
			io.WriteString(w, chunk)
		}
		io.WriteString(w, "\n\ndata: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n")
	})
	var m *meter
	e.h.rp.ModifyResponse = func(res *http.Response) error {
		err := e.h.modifyResponse(res)
		m = res.Request.Context().Value(callKey{}).(*call).meter
		return err
	}
	v := e.token("openai", nil)
	res, body := e.do("POST", "/openai/v1/chat/completions", chatBody, bearerHeader(v))
	if res.StatusCode != 200 || len(body) < 10<<20 {
		t.Fatalf("status %d, %d bytes", res.StatusCode, len(body))
	}
	if cap(m.line) > 2*maxLine {
		t.Errorf("line buffer grew to %d bytes", cap(m.line))
	}
	if u := e.rec.last(t); u.CompletionTokens != 2 {
		t.Errorf("usage after the huge line: %+v", u)
	}
}

// TestNoEstimateWithoutModel: a call that names no model (a model listing)
// or fails is never charged an estimate.
func TestNoEstimateWithoutModel(t *testing.T) {
	e := newEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"openai"}]}`)
	})
	v := e.token("openai", nil)
	if res, _ := e.do("GET", "/openai/v1/models", "", bearerHeader(v)); res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if u := e.rec.last(t); u.Estimated || u.PromptTokens != 0 || u.CompletionTokens != 0 {
		t.Errorf("models listing charged: %+v", u)
	}
}
