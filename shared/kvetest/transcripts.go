package kvetest

import (
	"bytes"
	"embed"
	"testing"
)

// testdata holds the recorded answers the fake upstreams replay: JSON bodies
// and SSE transcripts in the providers' exact wire formats.
//
//go:embed testdata
var testdata embed.FS

// Transcript returns a file of testdata, e.g. "openai/chat_completion_stream_usage.sse".
func Transcript(t testing.TB, name string) []byte {
	t.Helper()
	b, err := testdata.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatalf("read transcript: %v", err)
	}
	return b
}

// Events returns the events of an SSE transcript, each with its blank line.
func Events(t testing.TB, name string) []string {
	t.Helper()
	return splitEvents(Transcript(t, name))
}

func mustRead(name string) []byte {
	b, err := testdata.ReadFile("testdata/" + name)
	if err != nil {
		panic("kvetest: " + err.Error()) // embedded at build time
	}
	return b
}

// splitEvents cuts an SSE transcript into events, each with its blank line.
func splitEvents(transcript []byte) []string {
	var events []string
	for _, ev := range bytes.SplitAfter(transcript, []byte("\n\n")) {
		if len(bytes.TrimSpace(ev)) > 0 {
			events = append(events, string(ev))
		}
	}
	return events
}
