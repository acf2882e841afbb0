package local_test

import (
	"testing"

	"github.com/openai/openai-go/v3"
)

// TestUsageModelOfJSONAnswers: the model of a usage record is the one the
// upstream reports (DESIGN §5: usage is read from JSON bodies and SSE
// streams), the dated snapshot that answered rather than the alias the
// client asked for — as it already is for streams.
func TestUsageModelOfJSONAnswers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok := e.token(t, nil)
	c := e.client(tok.Value)
	if err := chat(t, c); err != nil {
		t.Fatal(err)
	}
	stream := c.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
		Model:         "gpt-4o-mini",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello.")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	for _, u := range usageRecords(t, e.inst, e.org.ID, 2) {
		if u.Model != "gpt-4o-mini-2024-07-18" {
			t.Errorf("record of a %d-byte answer: model %q, want the upstream's gpt-4o-mini-2024-07-18", u.BytesOut, u.Model)
		}
	}
}
