package proxy

import (
	"bytes"
	"io"
	"time"

	"github.com/keyvault-edge/kve/shared/kve"
)

// meter wraps an upstream response body on its way to the client. It counts
// bytes and reads usage (model, prompt and completion tokens) from the bytes
// the client receives anyway: SSE events as they pass, a JSON body from its
// tail at the end. It never holds a byte back and keeps at most maxLine +
// tailSize bytes per stream, whatever the upstream sends (SECURITY T53).
type meter struct {
	body   io.ReadCloser
	sse    bool
	u      *kve.Usage
	onErr  func(error) error
	idle   *time.Timer // the idle deadline, reset by every read; nil: none
	idleIn time.Duration

	bytes   int64
	line    []byte // the SSE line being assembled
	skip    bool   // the current line is over maxLine: ignore it to its end
	lastNL  bool   // the last byte passed was a newline
	tail    []byte // last tailSize bytes of a JSON body
	content int64  // bytes of generated text seen, for estimates
	found   bool   // the upstream reported usage
	done    bool
	pending []byte // synthetic bytes to send before EOF (an SSE error event)

	modelSeen bool // the stream named its model: later events matter only for usage
}

const (
	maxLine  = 1 << 20
	tailSize = 8 << 10
)

func (m *meter) Read(p []byte) (int, error) {
	if m.pending != nil {
		n := copy(p, m.pending)
		if m.pending = m.pending[n:]; len(m.pending) == 0 {
			m.pending = nil
			m.done = true
		}
		return n, nil
	}
	if m.done {
		return 0, io.EOF
	}
	n, err := m.body.Read(p)
	if n > 0 {
		m.bytes += int64(n)
		m.observe(p[:n])
		if m.idle != nil {
			m.idle.Reset(m.idleIn)
		}
	}
	if err != nil && err != io.EOF {
		err = m.onErr(err)
		if m.sse && n == 0 {
			// End an interrupted stream with a well-formed SSE error event
			// instead of a cut connection: SDKs raise it as an API error.
			m.pending = sseError(m.lastNL)
			return m.Read(p)
		}
	}
	return n, err
}

func (m *meter) Close() error {
	if m.idle != nil {
		m.idle.Stop()
	}
	return m.body.Close()
}

func (m *meter) observe(b []byte) {
	m.lastNL = b[len(b)-1] == '\n'
	if !m.sse {
		if len(b) >= tailSize {
			m.tail = append(m.tail[:0], b[len(b)-tailSize:]...)
		} else {
			if over := len(m.tail) + len(b) - tailSize; over > 0 {
				m.tail = append(m.tail[:0], m.tail[over:]...)
			}
			m.tail = append(m.tail, b...)
		}
		return
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			m.addLine(b)
			return
		}
		m.addLine(b[:i])
		if !m.skip {
			m.sseLine(m.line)
		}
		m.line, m.skip = m.line[:0], false
		b = b[i+1:]
	}
}

func (m *meter) addLine(b []byte) {
	if m.skip {
		return
	}
	if len(m.line)+len(b) > maxLine {
		m.skip, m.line = true, m.line[:0]
		return
	}
	m.line = append(m.line, b...)
}

// sseLine reads one line of an event stream; only data lines matter.
func (m *meter) sseLine(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	data, ok := bytes.CutPrefix(line, []byte("data:"))
	if !ok {
		return
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return // "[DONE]" and keep-alives
	}
	if m.modelSeen {
		// A content chunk: only its text length matters (for estimates),
		// and it is counted without decoding the event.
		usage, text := scanEvent(data)
		if !usage {
			m.content += text
			return
		}
	}
	var d usageDoc
	if !readUsageDoc(data, &d) {
		return
	}
	m.apply(&d)
}

// finish reads usage from what the whole body held: for JSON, the tail.
func (m *meter) finish() {
	m.u.BytesOut = m.bytes
	if !m.sse && len(m.tail) > 0 {
		// The whole body, whose top-level "model" is the upstream's answer,
		// or else the usage near the end of a longer one.
		var d usageDoc
		ok := m.bytes <= tailSize && readUsageDoc(m.tail, &d)
		if !ok {
			d = usageDoc{}
			if i := lastUsageKey(m.tail); i >= 0 {
				ok = readUsageDoc(m.tail[i:], &d)
			}
		}
		if ok {
			m.apply(&d)
		}
		if !m.found {
			m.content = m.bytes
		}
	}
	// The upstream reported nothing (an OpenAI stream without
	// stream_options.include_usage, say): estimate at ~4 bytes a token, but
	// only for a successful call to a model: a model listing or an error
	// must not spend a budget.
	if !m.found && m.u.Model != "" && m.u.Status/100 == 2 && (m.content > 0 || m.u.BytesIn > 0) {
		m.u.Estimated = true
		m.u.PromptTokens = (m.u.BytesIn + 3) / 4
		m.u.CompletionTokens = (m.content + 3) / 4
	}
}

// readUsageDoc fills d from the members of a JSON document (a whole body or
// an SSE event) that carry the model, the usage and generated text,
// decoding only those, without encoding/json's reflection: it runs on
// every response and on the events of a stream that may hold usage.
func readUsageDoc(doc []byte, d *usageDoc) bool {
	return members(doc, func(key, value []byte) bool {
		switch string(key) {
		case "model":
			d.Model = stringValue(value)
		case "modelVersion":
			d.ModelVersion = stringValue(value)
		case "usage":
			if f, ok := decodeUsageFields(value); ok {
				d.Usage = &f
			}
		case "usageMetadata":
			if g, ok := decodeGeminiUsage(value); ok {
				d.UsageMetadata = &g
			}
		case "message", "response": // Anthropic's message_start, OpenAI Responses events
			var msg usageDocMsg
			ok := members(value, func(k, v []byte) bool {
				switch string(k) {
				case "model":
					msg.Model = stringValue(v)
				case "usage":
					if f, ok := decodeUsageFields(v); ok {
						msg.Usage = &f
					}
				}
				return true
			})
			// The same shape: the model and its usage. A message wins
			// over a response.
			if ok && (d.Message == nil || string(key) == "message") {
				d.Message = &msg
			}
		case "choices": // OpenAI's text
			d.Text[0] = value
		case "delta": // Anthropic's text deltas
			d.Text[1] = value
		}
		return true
	})
}

func decodeGeminiUsage(raw []byte) (geminiUsage, bool) {
	var g geminiUsage
	ok := members(raw, func(k, v []byte) bool {
		switch string(k) {
		case "promptTokenCount":
			g.PromptTokenCount = intValue(v)
		case "candidatesTokenCount":
			g.CandidatesTokenCount = intValue(v)
		case "cachedContentTokenCount":
			g.CachedContentTokenCount = intValue(v)
		case "thoughtsTokenCount":
			g.ThoughtsTokenCount = intValue(v)
		}
		return true
	})
	return g, ok
}

// decodeUsageFields reads a usage object of any supported provider with the
// top-level walker, without encoding/json's reflection on the hot path.
func decodeUsageFields(raw []byte) (usageFields, bool) {
	var f usageFields
	detail := func(raw []byte, name string) (n int64, found bool) {
		members(raw, func(k, v []byte) bool {
			if string(k) == name {
				n, found = intValue(v), true
			}
			return true
		})
		return n, found
	}
	ok := members(raw, func(k, v []byte) bool {
		switch string(k) {
		case "prompt_tokens":
			f.PromptTokens = intValue(v)
		case "completion_tokens":
			f.CompletionTokens = intValue(v)
		case "input_tokens":
			f.InputTokens = intValue(v)
		case "output_tokens":
			f.OutputTokens = intValue(v)
		case "cache_read_input_tokens":
			f.CacheReadInputTokens = intValue(v)
		case "cache_creation_input_tokens":
			f.CacheCreationInputTokens = intValue(v)
		case "prompt_tokens_details", "input_tokens_details":
			if n, ok := detail(v, "cached_tokens"); ok {
				d := &cachedDetail{n}
				if string(k) == "prompt_tokens_details" {
					f.PromptTokensDetails = d
				} else {
					f.InputTokensDetails = d
				}
			}
		case "completion_tokens_details", "output_tokens_details":
			if n, ok := detail(v, "reasoning_tokens"); ok {
				d := &reasoningDetail{n}
				if string(k) == "completion_tokens_details" {
					f.CompletionTokensDetails = d
				} else {
					f.OutputTokensDetails = d
				}
			}
		}
		return true
	})
	return f, ok
}

// lastUsageKey finds the start of a {"usage":…} or {"usageMetadata":…}
// fragment near the end of a JSON body, rewritten so that it reads as an
// object: it returns the index of the "{" that now stands before the key.
func lastUsageKey(tail []byte) int {
	i := bytes.LastIndex(tail, []byte(`"usage`))
	if i <= 0 {
		return -1
	}
	// Turn `…, "usage": {…}}` into `{"usage": {…}}` in place: the byte before
	// the key (a comma, brace or space) becomes the opening brace.
	tail[i-1] = '{'
	return i - 1
}

// usageDoc holds the fields of every supported wire format that carry the
// model and the usage: OpenAI (JSON and SSE chunks), Anthropic (JSON,
// message_start and message_delta events) and Gemini (usageMetadata).
type usageDoc struct {
	Model         string
	ModelVersion  string
	Usage         *usageFields
	Message       *usageDocMsg // Anthropic's message, or a Responses API event's response
	UsageMetadata *geminiUsage
	Text          [2][]byte // the raw choices and delta, which hold the text
}

type usageDocMsg struct {
	Model string
	Usage *usageFields
}

type usageFields struct {
	PromptTokens            int64
	CompletionTokens        int64
	PromptTokensDetails     *cachedDetail
	CompletionTokensDetails *reasoningDetail
	// Anthropic, and OpenAI's Responses API (which has the details)
	InputTokens              int64
	OutputTokens             int64
	CacheReadInputTokens     int64
	CacheCreationInputTokens int64
	InputTokensDetails       *cachedDetail
	OutputTokensDetails      *reasoningDetail
}

type cachedDetail struct {
	CachedTokens int64
}

type reasoningDetail struct {
	ReasoningTokens int64
}

type geminiUsage struct {
	PromptTokenCount        int64
	CandidatesTokenCount    int64
	CachedContentTokenCount int64
	ThoughtsTokenCount      int64
}

// apply merges one document into the usage. Anthropic and Gemini report
// running totals, so later values replace earlier ones; OpenAI reports once.
func (m *meter) apply(d *usageDoc) {
	u := m.u
	if d.Model != "" || d.ModelVersion != "" || d.Message != nil && d.Message.Model != "" {
		m.modelSeen = true
	}
	if d.Model != "" {
		u.Model = d.Model
	} else if d.ModelVersion != "" {
		u.Model = d.ModelVersion
	}
	if d.Message != nil {
		if d.Message.Model != "" {
			u.Model = d.Message.Model
		}
		if d.Message.Usage != nil {
			m.applyFields(d.Message.Usage)
		}
	}
	if d.Usage != nil {
		m.applyFields(d.Usage)
	}
	if g := d.UsageMetadata; g != nil {
		m.found = true
		u.PromptTokens = g.PromptTokenCount
		u.CompletionTokens = g.CandidatesTokenCount + g.ThoughtsTokenCount
		u.CachedTokens = g.CachedContentTokenCount
		u.ReasoningTokens = g.ThoughtsTokenCount
	}
	if m.sse && !m.found {
		// An estimate counts a stream's text (a JSON body's estimate is
		// its size).
		m.content += textLen(d.Text[0]) + textLen(d.Text[1])
	}
}

func (m *meter) applyFields(f *usageFields) {
	u := m.u
	switch {
	case f.PromptTokens > 0 || f.CompletionTokens > 0:
		m.found = true
		u.PromptTokens, u.CompletionTokens = f.PromptTokens, f.CompletionTokens
		if f.PromptTokensDetails != nil {
			u.CachedTokens = f.PromptTokensDetails.CachedTokens
		}
		if f.CompletionTokensDetails != nil {
			u.ReasoningTokens = f.CompletionTokensDetails.ReasoningTokens
		}
	case f.InputTokensDetails != nil || f.OutputTokensDetails != nil:
		// OpenAI's Responses API: input tokens include the cached ones.
		m.found = true
		u.PromptTokens, u.CompletionTokens = f.InputTokens, f.OutputTokens
		if f.InputTokensDetails != nil {
			u.CachedTokens = f.InputTokensDetails.CachedTokens
		}
		if f.OutputTokensDetails != nil {
			u.ReasoningTokens = f.OutputTokensDetails.ReasoningTokens
		}
	case f.InputTokens > 0 || f.OutputTokens > 0 || f.CacheReadInputTokens > 0 || f.CacheCreationInputTokens > 0:
		// Anthropic: input_tokens excludes what was read from or written to
		// the prompt cache; writes are metered as ordinary input.
		m.found = true
		if in := f.InputTokens + f.CacheReadInputTokens + f.CacheCreationInputTokens; in > 0 {
			// message_delta repeats only the output count
			u.PromptTokens = in
			u.CachedTokens = f.CacheReadInputTokens
		}
		u.CompletionTokens = f.OutputTokens
	}
}

// sseError is the event that ends a stream the upstream broke off.
func sseError(atLineStart bool) []byte {
	const ev = "event: error\ndata: {\"error\":{\"message\":\"The upstream stream was interrupted.\",\"type\":\"kve_error\",\"code\":\"upstream_unavailable\"}}\n\n"
	if atLineStart {
		return []byte("\n" + ev)
	}
	return []byte("\n\n" + ev)
}

// scanEvent reads an SSE event's JSON in one pass from string to string:
// whether it may hold usage (a "usage" key whose value is an object,
// Gemini's "usageMetadata", an Anthropic "message"), and the length of
// its "content" and "text" string values as written (escapes count as
// written), for estimates. Keys count at any depth; a torn string's text
// counts to the end.
func scanEvent(data []byte) (usage bool, text int64) {
	for i := 0; ; {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			return usage, text
		}
		start := i + q
		end := skipString(data, start)
		if end < 0 {
			return usage, text
		}
		colon := skipSpace(data, end)
		if colon >= len(data) || data[colon] != ':' {
			i = end // a string value
			continue
		}
		v := skipSpace(data, colon+1)
		switch string(data[start+1 : end-1]) {
		case "usageMetadata", "message":
			usage = true
		case "usage":
			usage = usage || v < len(data) && data[v] == '{'
		case "content", "text":
			if v < len(data) && data[v] == '"' {
				e := skipString(data, v)
				if e < 0 {
					return usage, text + int64(len(data)-v-1)
				}
				text += int64(e - v - 2)
				i = e
				continue
			}
		}
		i = v // into the value: objects hold keys too
	}
}

// textLen is the length of the text in a JSON value (scanEvent).
func textLen(data []byte) int64 {
	_, n := scanEvent(data)
	return n
}
