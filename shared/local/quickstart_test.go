package local_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/google/go-cmp/cmp"
	"github.com/openai/openai-go/v3"

	"github.com/keyvault-edge/kve/shared/kve"
	"github.com/keyvault-edge/kve/shared/kvetest"
	"github.com/keyvault-edge/kve/shared/store"
)

var tokenFormat = regexp.MustCompile(`^kve_(hb|pt)_(dev|stg|prd)_[0-9A-Za-z]{38}$`)

// TestQuickstartOpenAI is the README's quickstart as a test: setup with the
// code from <data>/setup-code, login, an organization, a key whose upstream
// is the fake OpenAI, a token — then the official OpenAI SDK, unchanged but
// for its base URL and the token as its API key, for chat completions plain
// and streaming, embeddings, models and a multipart file upload. The
// upstream sees the real key on every request and never the token (it checks
// each request itself), and the usage records carry the models and token
// counts the upstream reported.
func TestQuickstartOpenAI(t *testing.T) {
	t.Parallel()
	up := kvetest.NewOpenAI(t)
	inst := kvetest.Start(t)
	inst.Setup(t)
	inst.Login(t, kvetest.Owner, inst.OwnerPassword())
	org := inst.CreateOrg(t, "Acme")
	if org.Slug != "acme" {
		t.Errorf("org slug %q, the README says acme", org.Slug)
	}
	key := inst.CreateKey(t, org.Slug, map[string]any{
		"name": "openai-main", "provider": "openai", "upstream": up.URL, "secret": up.Key,
	})
	if key.Last4 != up.Key[len(up.Key)-4:] {
		t.Errorf("key reference shows last4 %q", key.Last4)
	}
	tok := inst.CreateToken(t, org.Slug, map[string]any{
		"name": "web-dev", "key": "openai-main", "env": "dev", "allow_server": true, "origins": []string{"http://localhost:3000"},
	})
	if !tokenFormat.MatchString(tok.Value) || !strings.HasPrefix(tok.Value, "kve_hb_dev_") {
		t.Fatalf("token %s does not have the format of DESIGN §2", tok.ID)
	}
	client := inst.OpenAI(tok.Value)
	ctx := t.Context()

	t.Run("chat completion", func(t *testing.T) {
		cc, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := cc.Choices[0].Message.Content; got != "Hello! How can I help you today?" {
			t.Errorf("content = %q", got)
		}
		if cc.Usage.PromptTokens != 19 || cc.Usage.CompletionTokens != 9 {
			t.Errorf("usage = %d + %d, want 19 + 9", cc.Usage.PromptTokens, cc.Usage.CompletionTokens)
		}
	})

	t.Run("chat completion streaming", func(t *testing.T) {
		stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model:         "gpt-4o-mini",
			Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		})
		defer stream.Close()
		var acc openai.ChatCompletionAccumulator
		chunks := 0
		for stream.Next() {
			acc.AddChunk(stream.Current())
			chunks++
		}
		if err := stream.Err(); err != nil {
			t.Fatal(err)
		}
		// Every event of the transcript but "data: [DONE]" is a chunk.
		if want := len(kvetest.Events(t, "openai/chat_completion_stream_usage.sse")) - 1; chunks != want {
			t.Errorf("read %d chunks, want %d", chunks, want)
		}
		if got := acc.Choices[0].Message.Content; got != "Hello! How can I help you today?" {
			t.Errorf("accumulated content = %q", got)
		}
		if acc.Usage.PromptTokens != 23 || acc.Usage.CompletionTokens != 9 {
			t.Errorf("usage = %d + %d, want 23 + 9", acc.Usage.PromptTokens, acc.Usage.CompletionTokens)
		}
	})

	t.Run("embeddings", func(t *testing.T) {
		res, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
			Model: openai.EmbeddingModelTextEmbedding3Small,
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"hello world", "sanitized tokens"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Data) != 2 {
			t.Fatalf("%d embeddings, want 2", len(res.Data))
		}
		for i, e := range res.Data {
			if diff := cmp.Diff(kvetest.FakeEmbedding(i), e.Embedding); diff != "" {
				t.Errorf("embedding %d (-want +got):\n%s", i, diff)
			}
		}
	})

	t.Run("models", func(t *testing.T) {
		page, err := client.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		if !slices.Contains(ids, "gpt-4o-mini") || !slices.Contains(ids, "text-embedding-3-small") {
			t.Errorf("models = %v", ids)
		}
	})

	t.Run("file upload", func(t *testing.T) {
		content := `{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}` + "\n"
		f, err := client.Files.New(ctx, openai.FileNewParams{
			File:    openai.File(strings.NewReader(content), "train.jsonl", "application/jsonl"),
			Purpose: openai.FilePurposeFineTune,
		})
		if err != nil {
			t.Fatal(err)
		}
		if f.Filename != "train.jsonl" || f.Bytes != int64(len(content)) || f.Purpose != "fine-tune" {
			t.Errorf("file = %s %d bytes %s", f.Filename, f.Bytes, f.Purpose)
		}
		reqs := up.Requests()
		last := reqs[len(reqs)-1]
		if last.Path != "/v1/files" || !strings.Contains(string(last.Body), content) {
			t.Errorf("the upstream did not receive the multipart body intact: %s", last.Path)
		}
	})

	t.Run("upstream saw the real key only", func(t *testing.T) {
		reqs := up.Requests()
		if len(reqs) != 5 {
			t.Fatalf("upstream received %d requests, want 5", len(reqs))
		}
		for _, r := range reqs {
			if got := r.Header.Get("Authorization"); got != "Bearer "+up.Key {
				t.Errorf("%s %s: Authorization is not the real key", r.Method, r.Path)
			}
		}
		if v := up.Violations(); len(v) > 0 {
			t.Errorf("upstream rules broken: %v", v)
		}
	})

	t.Run("usage recorded", func(t *testing.T) {
		recs := usageRecords(t, inst, org.ID, 5)
		// Chat answers are told apart by their size: the recorded JSON body
		// or the SSE transcript, byte for byte.
		jsonSize := len(kvetest.Transcript(t, "openai/chat_completion.json"))
		sseSize := len(kvetest.Transcript(t, "openai/chat_completion_stream_usage.sse"))
		type row struct {
			Model                    string
			Status                   int
			Prompt, Completion       int64
			Estimated, ClientAborted bool
		}
		got := map[string]row{}
		for _, u := range recs {
			if u.TokenID != tok.ID || u.Provider != "openai" || u.Env != kve.EnvDev || u.ClientIP != "127.0.0.1" {
				t.Errorf("record %s: token %s provider %s env %s client %s", u.RequestID, u.TokenID, u.Provider, u.Env, u.ClientIP)
			}
			k := u.Method + " " + u.Path
			if u.Path == "/v1/chat/completions" {
				k += fmt.Sprintf(" %d bytes", u.BytesOut)
			}
			got[k] = row{u.Model, u.Status, u.PromptTokens, u.CompletionTokens, u.Estimated, u.ClientAborted}
		}
		jsonChat := fmt.Sprintf("POST /v1/chat/completions %d bytes", jsonSize)
		want := map[string]row{
			// The model of a JSON answer: see TestUsageModelOfJSONAnswers.
			jsonChat: {got[jsonChat].Model, 200, 19, 9, false, false},
			fmt.Sprintf("POST /v1/chat/completions %d bytes", sseSize): {"gpt-4o-mini-2024-07-18", 200, 23, 9, false, false},
			"POST /v1/embeddings": {"text-embedding-3-small", 200, 4, 0, false, false},
		}
		for k, w := range want {
			if diff := cmp.Diff(w, got[k]); diff != "" {
				t.Errorf("usage of %s (-want +got):\n%s", k, diff)
			}
		}
		for _, k := range []string{"GET /v1/models", "POST /v1/files"} {
			if r, ok := got[k]; !ok || r.Status != 200 {
				t.Errorf("no usage record with status 200 for %s", k)
			}
		}
	})
}

// TestQuickstartAnthropic runs the official Anthropic SDK at <kve>/anthropic
// with a kve token, as x-api-key and as a bearer token (how newer SDKs send
// it): Messages.New and Messages.NewStreaming, accumulated.
func TestQuickstartAnthropic(t *testing.T) {
	t.Parallel()
	up := kvetest.NewAnthropic(t)
	inst := kvetest.Start(t)
	inst.Setup(t)
	org := inst.CreateOrg(t, "Acme")
	inst.AddKey(t, org.Slug, "claude", up)
	tok := inst.CreateToken(t, org.Slug, map[string]any{
		"name": "backend", "key": "claude", "env": "dev", "allow_server": true,
	})
	params := anthropic.MessageNewParams{
		Model:     "claude-sonnet-4-5",
		MaxTokens: 256,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello."))},
	}
	clients := []struct {
		name   string
		client anthropic.Client
	}{
		{"x-api-key", inst.Anthropic(tok.Value)},
		{"bearer", inst.Anthropic("", aoption.WithAuthToken(tok.Value))},
	}
	for _, c := range clients {
		t.Run(c.name+"/messages", func(t *testing.T) {
			msg, err := c.client.Messages.New(t.Context(), params)
			if err != nil {
				t.Fatal(err)
			}
			if len(msg.Content) != 1 || msg.Content[0].Text != "Hello! How can I help you today?" {
				t.Errorf("content = %+v", msg.Content)
			}
			if msg.Usage.InputTokens != 12 || msg.Usage.OutputTokens != 12 {
				t.Errorf("usage = %d + %d, want 12 + 12", msg.Usage.InputTokens, msg.Usage.OutputTokens)
			}
		})
		t.Run(c.name+"/streaming", func(t *testing.T) {
			stream := c.client.Messages.NewStreaming(t.Context(), params)
			defer stream.Close()
			var msg anthropic.Message
			events := 0
			for stream.Next() {
				if err := msg.Accumulate(stream.Current()); err != nil {
					t.Fatalf("accumulate: %v", err)
				}
				events++
			}
			if err := stream.Err(); err != nil {
				t.Fatal(err)
			}
			// The SDK passes on every event of the transcript but the ping.
			want := 0
			for _, ev := range kvetest.Events(t, "anthropic/message_stream.sse") {
				if !strings.HasPrefix(ev, "event: ping\n") {
					want++
				}
			}
			if events != want {
				t.Errorf("read %d events, want %d", events, want)
			}
			if len(msg.Content) != 1 || msg.Content[0].Text != "Hello! How can I help you today?" {
				t.Errorf("accumulated content = %+v", msg.Content)
			}
			if msg.Model != "claude-sonnet-4-5-20250929" || msg.Usage.InputTokens != 25 || msg.Usage.OutputTokens != 12 {
				t.Errorf("accumulated %s, usage %d + %d", msg.Model, msg.Usage.InputTokens, msg.Usage.OutputTokens)
			}
		})
	}

	t.Run("upstream saw the real key only", func(t *testing.T) {
		reqs := up.Requests()
		if len(reqs) != 4 {
			t.Fatalf("upstream received %d requests, want 4", len(reqs))
		}
		for _, r := range reqs {
			if r.Header.Get("X-Api-Key") != up.Key || r.Header.Get("Authorization") != "" {
				t.Errorf("%s %s: the key is not exactly the real x-api-key", r.Method, r.Path)
			}
			if r.Header.Get("Anthropic-Version") == "" {
				t.Errorf("%s %s: anthropic-version was dropped", r.Method, r.Path)
			}
		}
	})

	t.Run("usage recorded", func(t *testing.T) {
		recs := usageRecords(t, inst, org.ID, 4)
		var got [][2]int64
		for _, u := range recs {
			// The model of a JSON answer: see TestUsageModelOfJSONAnswers.
			if !strings.HasPrefix(u.Model, "claude-sonnet-4-5") || u.Status != 200 || u.Estimated || u.CostMicro <= 0 {
				t.Errorf("record %s: model %q status %d estimated %v cost %d", u.RequestID, u.Model, u.Status, u.Estimated, u.CostMicro)
			}
			got = append(got, [2]int64{u.PromptTokens, u.CompletionTokens})
		}
		slices.SortFunc(got, func(a, b [2]int64) int { return int(a[0] - b[0]) })
		if diff := cmp.Diff([][2]int64{{12, 12}, {12, 12}, {25, 12}, {25, 12}}, got); diff != "" {
			t.Errorf("token counts (-want +got):\n%s", diff)
		}
	})
}

// usageRecords waits until the instance's store holds at least n usage
// records of org (local mode writes them in batches every 100 ms) and
// returns them.
func usageRecords(t *testing.T, inst *kvetest.Instance, orgID string, n int) []kve.Usage {
	t.Helper()
	var recs []kve.Usage
	kvetest.Eventually(t, 10*time.Second, "usage recorded", func() bool {
		page, err := inst.Store(t).UsageRecords(t.Context(), orgID, store.UsageFilter{})
		if err != nil {
			t.Fatalf("read usage: %v", err)
		}
		recs = page.Items
		return len(recs) >= n
	})
	return recs
}
