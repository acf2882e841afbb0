package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzMembers: on any input the walker never panics, and on a valid JSON
// object it sees exactly the members encoding/json sees (last one wins for
// repeated keys in both).
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o","max_tokens":100,"messages":[{"role":"user","content":"hi \"model\": x"}]}`,
		`{"generationConfig":{"maxOutputTokens":64},"contents":[]}`,
		` { "a" : [1, {"b": "}"}], "c": null , "d": -1.5e3 } `,
		`{}`, `[]`, `{"a":`, `{"a":"\\"}`, `{"x":{"y":[[[]]]}}`,
		`{"a":"x\\\"y","b":"\\\\","c":"\"\\","d":["\\\\\"}"]}`, // runs of backslashes before quotes
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := map[string]string{}
		ok := members(data, func(k, v []byte) bool {
			got[string(k)] = string(v)
			return true
		})
		var want map[string]json.RawMessage
		if json.Unmarshal(data, &want) != nil || want == nil {
			return
		}
		if !ok {
			t.Fatalf("valid object %q not walked", data)
		}
		for k, raw := range got {
			if !utf8.ValidString(k) || strings.ContainsRune(k, '\\') {
				continue // encoding/json decodes such keys; the walker keeps them raw
			}
			v, seen := want[k]
			if !seen {
				t.Fatalf("walker saw member %q that encoding/json did not", k)
			}
			var a, b bytes.Buffer
			json.Compact(&a, v)
			json.Compact(&b, []byte(raw))
			if a.String() != b.String() {
				t.Fatalf("member %q = %q, encoding/json says %q", k, raw, v)
			}
		}
	})
}

func TestRequestFields(t *testing.T) {
	c := &call{}
	members([]byte(`{"messages":[{"content":"\"model\":\"cheap\""}],"model":"gpt-4o","max_completion_tokens":512,"generationConfig":{"maxOutputTokens":2048}}`),
		func(k, v []byte) bool {
			switch string(k) {
			case "model":
				c.usage.Model = stringValue(v)
			case "max_completion_tokens":
				c.ask.MaxOutputTokens = intValue(v)
			}
			return true
		})
	if c.usage.Model != "gpt-4o" || c.ask.MaxOutputTokens != 512 {
		t.Errorf("model %q max %d", c.usage.Model, c.ask.MaxOutputTokens)
	}
	if got := stringValue([]byte(`"a\u00e9\"b"`)); got != "aé\"b" {
		t.Errorf("stringValue with escapes = %q", got)
	}
}

// TestMediaTypes: the cheap Content-Type checks classify what upstreams
// send: parameters, case and spaces ignored.
func TestMediaTypes(t *testing.T) {
	tests := []struct {
		ct          string
		json, event bool
	}{
		{"application/json", true, false},
		{"application/json; charset=utf-8", true, false},
		{"Application/JSON;charset=UTF-8", true, false},
		{" application/problem+json ", true, false},
		{"application/vnd.api+JSON; q=1", true, false},
		{"+json", false, false},
		{"text/event-stream", false, true},
		{"text/event-stream; charset=utf-8", false, true},
		{"TEXT/Event-Stream", false, true},
		{"text/event-streams", false, false},
		{"text/plain", false, false},
		{"application/jsonl", false, false},
		{"", false, false},
	}
	for _, tc := range tests {
		if got := isJSON(tc.ct); got != tc.json {
			t.Errorf("isJSON(%q) = %v", tc.ct, got)
		}
		if got := isEventStream(tc.ct); got != tc.event {
			t.Errorf("isEventStream(%q) = %v", tc.ct, got)
		}
	}
}

// FuzzScanEvent: on any input scanEvent never panics; on a valid JSON
// document it finds usage where a token-by-token decoder does (a "usage"
// object, "usageMetadata" or "message" at any depth, repeated keys
// included), and, where nothing is escaped and the UTF-8 is valid, text as
// long as the decoded "content" and "text" strings.
func FuzzScanEvent(f *testing.F) {
	for _, s := range []string{
		`{"choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}],"usage":null}`,
		`{"type":"message_start","message":{"model":"claude","usage":{"input_tokens":5}}}`,
		`{"type":"content_block_delta","delta":{"type":"text_delta","text":"Hi \"there\""}}`,
		`{"candidates":[{"content":{"parts":[{"text":"x"}]}}],"usageMetadata":{"promptTokenCount":3}}`,
		`{"type":"response.completed","response":{"usage" : {"input_tokens":1}}}`,
		`{"a":"usage","b":{"usage":[1]},"content":7,"text":"t","text":"again"}`,
		`{"text":"a\\\\","usage":{},"content":"\\\"usage\\\":{"}`, // runs of backslashes before quotes
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		usage, text := scanEvent(data)
		if !json.Valid(data) {
			return
		}
		var wantUsage bool
		var wantText int64
		dec := json.NewDecoder(bytes.NewReader(data))
		type frame struct{ object, key bool } // key: the next token is a key
		var stack []frame
		var key string // the key whose value comes next
		for {
			tok, err := dec.Token()
			if err != nil {
				break
			}
			top := len(stack) - 1
			if top >= 0 && stack[top].object && stack[top].key {
				if k, ok := tok.(string); ok {
					key, stack[top].key = k, false
					continue
				}
			}
			switch tok {
			case json.Delim('{'), json.Delim('['):
				if key == "usage" && tok == json.Delim('{') || key == "usageMetadata" || key == "message" {
					wantUsage = true
				}
				stack = append(stack, frame{object: tok == json.Delim('{'), key: true})
				key = ""
				continue
			case json.Delim('}'), json.Delim(']'):
				stack = stack[:top]
			default:
				if key == "usageMetadata" || key == "message" {
					wantUsage = true
				}
				if s, ok := tok.(string); ok && (key == "content" || key == "text") {
					wantText += int64(len(s))
				}
			}
			if top = len(stack) - 1; top >= 0 && stack[top].object {
				stack[top].key = true
			}
			key = ""
		}
		if usage != wantUsage {
			t.Fatalf("%s: usage %v, want %v", data, usage, wantUsage)
		}
		if !bytes.ContainsRune(data, '\\') && utf8.Valid(data) && text != wantText {
			t.Fatalf("%s: text %d, want %d", data, text, wantText)
		}
	})
}
