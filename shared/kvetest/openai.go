package kvetest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NewOpenAI starts a fake OpenAI API: chat completions (JSON, and SSE with or
// without stream_options.include_usage), embeddings (float or base64),
// models, multipart file uploads, and OpenAI's error JSON for everything else.
func NewOpenAI(t testing.TB) *Upstream {
	t.Helper()
	return newUpstream(t, "openai", serveOpenAI)
}

func serveOpenAI(u *Upstream, w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Openai-Processing-Ms", "42")
	switch route := r.Method + " " + r.URL.Path; route {
	case "POST /v1/chat/completions":
		var req struct {
			Model         string `json:"model"`
			Stream        bool   `json:"stream"`
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
			Messages []json.RawMessage `json:"messages"`
		}
		if json.Unmarshal(body, &req) != nil || req.Model == "" || len(req.Messages) == 0 {
			writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "We could not parse the JSON body of your request, or it lacks model or messages.")
			return
		}
		if !req.Stream {
			writeJSON(w, http.StatusOK, mustRead("openai/chat_completion.json"))
			return
		}
		name := "openai/chat_completion_stream.sse"
		if req.StreamOptions.IncludeUsage {
			name = "openai/chat_completion_stream_usage.sse"
		}
		u.stream(w, r, http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}, "Cache-Control": {"no-cache"}},
			splitEvents(mustRead(name)))
	case "POST /v1/embeddings":
		serveEmbeddings(w, body)
	case "GET /v1/models":
		writeJSON(w, http.StatusOK, mustRead("openai/models.json"))
	case "POST /v1/files":
		serveFileUpload(w, r, body)
	default:
		writeOpenAIError(w, http.StatusNotFound, "invalid_request_error", "",
			"Invalid URL ("+r.Method+" "+r.URL.Path+")")
	}
}

// embeddingDims is the length of every fake embedding.
const embeddingDims = 8

func serveEmbeddings(w http.ResponseWriter, body []byte) {
	var req struct {
		Model          string          `json:"model"`
		Input          json.RawMessage `json:"input"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if json.Unmarshal(body, &req) != nil || req.Model == "" {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "'model' is a required property")
		return
	}
	var inputs []string
	if json.Unmarshal(req.Input, &inputs) != nil {
		var one string
		if json.Unmarshal(req.Input, &one) != nil {
			writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "'input' must be a string or an array of strings")
			return
		}
		inputs = []string{one}
	}
	type embedding struct {
		Object    string `json:"object"`
		Index     int    `json:"index"`
		Embedding any    `json:"embedding"`
	}
	out := struct {
		Object string      `json:"object"`
		Data   []embedding `json:"data"`
		Model  string      `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model, Data: []embedding{}}
	for i, in := range inputs {
		vec := FakeEmbedding(i)
		e := embedding{Object: "embedding", Index: i, Embedding: vec}
		if req.EncodingFormat == "base64" {
			b := make([]byte, 0, 4*len(vec))
			for _, f := range vec {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(f)))
			}
			e.Embedding = base64.StdEncoding.EncodeToString(b)
		}
		out.Data = append(out.Data, e)
		out.Usage.PromptTokens += len(strings.Fields(in))
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, b)
}

// FakeEmbedding is the vector the fake OpenAI answers for input i: exact in
// float32, so that base64 and JSON answers decode to the same values.
func FakeEmbedding(i int) []float64 {
	v := make([]float64, embeddingDims)
	for j := range v {
		v[j] = float64(i+1) * float64(j+1) / 64
	}
	return v
}

func serveFileUpload(w http.ResponseWriter, r *http.Request, body []byte) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "Invalid Content-Type header, expected multipart/form-data.")
		return
	}
	form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(maxUpstreamBody)
	if err != nil {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "The multipart body could not be parsed.")
		return
	}
	defer form.RemoveAll()
	files, purpose := form.File["file"], form.Value["purpose"]
	if len(files) != 1 || len(purpose) != 1 {
		writeOpenAIError(w, http.StatusBadRequest, "invalid_request_error", "", "'file' and 'purpose' are required.")
		return
	}
	out := map[string]any{
		"object":         "file",
		"id":             "file-" + rand.Text()[:22],
		"purpose":        purpose[0],
		"filename":       files[0].Filename,
		"bytes":          files[0].Size,
		"created_at":     time.Now().Unix(),
		"expires_at":     nil,
		"status":         "processed",
		"status_details": nil,
	}
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusOK, b)
}

// writeOpenAIError answers in OpenAI's error shape; code "" is null.
func writeOpenAIError(w http.ResponseWriter, status int, typ, code, message string) {
	e := map[string]any{"message": message, "type": typ, "param": nil, "code": nil}
	if code != "" {
		e["code"] = code
	}
	b, _ := json.Marshal(map[string]any{"error": e})
	writeJSON(w, status, b)
}

func writeJSON(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
