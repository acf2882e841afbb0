package local_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/local"
	"github.com/keyvault-edge/kve/shared/store"
)

// streamParams asks for a chat completion stream without usage: what a
// client gets until it goes away is all kve can count.
var streamParams = openai.ChatCompletionNewParams{
	Model:    "gpt-4o-mini",
	Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
}

// TestClientDisconnect (SECURITY T44, class c9): a client that goes away
// mid-stream — the SDK's context cancelled after 3 chunks, or before the
// first — cancels the upstream request within a second, and the request is
// recorded as client_aborted with the tokens seen so far, estimated.
func TestClientDisconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		events int // what the upstream sends before holding the stream
		read   int // chunks the client reads before it goes away
	}{
		{"after 3 chunks", 5, 3},
		{"after the response head, before the first chunk", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			aborted := e.up.HoldAfter(tt.events)
			tok := e.token(t, nil)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			c := e.client(tok.Value)
			stream := c.Chat.Completions.NewStreaming(ctx, streamParams) // returns with the response head
			for n := 0; n < tt.read; n++ {
				if !stream.Next() {
					t.Fatalf("stream ended after %d chunks: %v", n, stream.Err())
				}
			}
			gone := time.Now()
			cancel()
			stream.Close()
			select {
			case at := <-aborted:
				if d := at.Sub(gone); d > time.Second {
					t.Errorf("the upstream saw the client go away after %v, want ≤ 1s", d)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the upstream never saw the client go away")
			}
			var u kve.Usage
			kvetest.Eventually(t, 10*time.Second, "the aborted request recorded", func() bool {
				page, err := e.inst.Store(t).UsageRecords(t.Context(), e.org.ID, store.UsageFilter{TokenID: tok.ID})
				if err != nil {
					t.Fatalf("read usage: %v", err)
				}
				if len(page.Items) == 0 {
					return false
				}
				u = page.Items[0]
				return true
			})
			if !u.ClientAborted || u.Status != 200 || !strings.HasPrefix(u.Model, "gpt-4o-mini") || !u.Estimated || u.PromptTokens == 0 {
				t.Errorf("record: client aborted %v, status %d, model %q, estimated %v, %d prompt tokens",
					u.ClientAborted, u.Status, u.Model, u.Estimated, u.PromptTokens)
			}
			if tt.read > 0 && u.CompletionTokens == 0 {
				t.Errorf("record counts no completion tokens for the %d chunks the client read", tt.read)
			}
		})
	}
}

// TestUpstreamFaults (SECURITY T53, class c9): an upstream that resets the
// connection mid-stream or goes silent ends the client's stream with a
// well-formed SSE error event that the SDKs raise — never a hang.
func TestUpstreamFaults(t *testing.T) {
	t.Parallel()
	t.Run("reset mid-stream, OpenAI SDK", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t)
		e.up.ResetAfter(3)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		c := e.client(e.token(t, nil).Value)
		stream := c.Chat.Completions.NewStreaming(ctx, streamParams)
		n := 0
		for stream.Next() {
			n++
		}
		var serr *ssestream.StreamError
		if err := stream.Err(); !errors.As(err, &serr) || !strings.Contains(serr.Message, "upstream_unavailable") {
			t.Fatalf("after %d chunks: got %T %v, want the stream's error event", n, err, err)
		}
		if ctx.Err() != nil || n != 3 {
			t.Errorf("read %d chunks, context %v; want 3 chunks and an error before the deadline", n, ctx.Err())
		}
	})
	t.Run("reset mid-stream, Anthropic SDK", func(t *testing.T) {
		t.Parallel()
		up := kvetest.NewAnthropic(t)
		inst := kvetest.Start(t)
		org := inst.SetupOrg(t)
		inst.AddKey(t, org, "claude", up)
		tok := inst.CreateToken(t, org, map[string]any{"name": "t", "key": "claude", "env": "dev", "allow_server": true})
		up.ResetAfter(4)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		c := inst.Anthropic(tok.Value, anthropicNoRetry)
		stream := c.Messages.NewStreaming(ctx, anthropicParams)
		var msg anthropic.Message
		for stream.Next() {
			msg.Accumulate(stream.Current())
		}
		if err := stream.Err(); err == nil || ctx.Err() != nil {
			t.Fatalf("stream error %v, context %v; want the stream's error event before the deadline", err, ctx.Err())
		}
		if len(msg.Content) != 1 || msg.Content[0].Text != "Hello" {
			t.Errorf("accumulated %+v before the error", msg.Content)
		}
	})
	t.Run("silent stream", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, kvetest.WithConfig(func(c *local.Config) { c.Timeouts.StreamIdle = 300 * time.Millisecond }))
		aborted := e.up.HoldAfter(3)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		c := e.client(e.token(t, nil).Value)
		stream := c.Chat.Completions.NewStreaming(ctx, streamParams)
		n := 0
		for stream.Next() {
			n++
		}
		var serr *ssestream.StreamError
		if err := stream.Err(); !errors.As(err, &serr) || ctx.Err() != nil || n != 3 {
			t.Fatalf("after %d chunks: got %T %v (context %v), want the stream's error event", n, err, err, ctx.Err())
		}
		select {
		case <-aborted: // kve hung up on the silent upstream
		case <-ctx.Done():
			t.Fatal("kve never cancelled the silent upstream")
		}
	})
}
