package kve_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/keyvault-edge/kve/shared/kve"
)

// canary is an obviously fake value whose every appearance in output is a leak.
const canary = "sk-test-FAKE-canary-7Q2w"

// canaryParts are pieces of the canary that would show a partial or encoded leak.
var canaryParts = []string{"canary", "FAKE-can", "7Q2w", "736b2d74", "736B2D74", "c2stdGVzdC"} // hex of "sk-t", base64 of "sk-test"

func assertRedacted(t *testing.T, what, out string) {
	t.Helper()
	for _, part := range canaryParts {
		if strings.Contains(out, part) {
			t.Errorf("%s leaks the secret (%q found)", what, part)
			return
		}
	}
	if !strings.Contains(out, "[redacted]") {
		t.Errorf("%s = %q, want it to say [redacted]", what, out)
	}
}

type withSecret struct {
	Name  string
	Value kve.Secret
}

type withSecretPointer struct {
	Name  string
	Value *kve.Secret
}

type nested struct {
	Inner withSecret
	List  []kve.Secret
	Map   map[string]kve.Secret
}

func TestSecretFmt(t *testing.T) {
	s := kve.Secret(canary)
	p := &s
	values := []struct {
		name  string
		value any
	}{
		{"value", s},
		{"pointer", p},
		{"struct", withSecret{"openai", s}},
		{"struct pointer", &withSecret{"openai", s}},
		{"struct with pointer field", withSecretPointer{"openai", p}},
		{"nested", nested{Inner: withSecret{"openai", s}, List: []kve.Secret{s}, Map: map[string]kve.Secret{"k": s}}},
		{"slice", []kve.Secret{s, s}},
		{"map value", map[string]kve.Secret{"key": s}},
		{"interface slice", []any{s, p}},
	}
	verbs := []string{"%v", "%s", "%q", "%x", "%X", "%+v", "%#v", "%d", "%10.3s", "%-30v", "%T %[1]v"}
	for _, v := range values {
		for _, verb := range verbs {
			t.Run(v.name+" "+verb, func(t *testing.T) {
				out := fmt.Sprintf(verb, v.value)
				assertRedacted(t, fmt.Sprintf("Sprintf(%q, %s)", verb, v.name), out)
			})
		}
	}
	t.Run("Sprint", func(t *testing.T) { assertRedacted(t, "Sprint", fmt.Sprint("key ", s)) })
	t.Run("Sprintln", func(t *testing.T) { assertRedacted(t, "Sprintln", fmt.Sprintln("key", s, p)) })
	t.Run("Stringer", func(t *testing.T) { assertRedacted(t, "String", s.String()) })
	t.Run("GoStringer", func(t *testing.T) { assertRedacted(t, "GoString", s.GoString()) })
}

func TestSecretSlog(t *testing.T) {
	s := kve.Secret(canary)
	handlers := []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	}
	logs := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"key-value argument", func(l *slog.Logger) { l.Info("token used", "token", s) }},
		{"pointer argument", func(l *slog.Logger) { l.Info("token used", "token", &s) }},
		{"slog.Any", func(l *slog.Logger) { l.Info("token used", slog.Any("token", s)) }},
		{"group", func(l *slog.Logger) { l.Info("token used", slog.Group("req", slog.Any("token", s))) }},
		{"With", func(l *slog.Logger) { l.With("token", s).Info("token used") }},
		{"WithGroup", func(l *slog.Logger) { l.WithGroup("req").Info("token used", "token", s) }},
		{"struct", func(l *slog.Logger) { l.Info("key added", "key", withSecret{"openai", s}) }},
		{"struct pointer", func(l *slog.Logger) { l.Info("key added", "key", &withSecret{"openai", s}) }},
		{"slice", func(l *slog.Logger) { l.Info("keys", "keys", []kve.Secret{s}) }},
		{"map", func(l *slog.Logger) { l.Info("keys", "keys", map[string]kve.Secret{"openai": s}) }},
		{"error attribute", func(l *slog.Logger) { l.Error("reveal token", "err", fmt.Errorf("open %v: %w", s, errors.New("boom"))) }},
	}
	for _, h := range handlers {
		for _, lg := range logs {
			t.Run(h.name+" "+lg.name, func(t *testing.T) {
				var buf bytes.Buffer
				lg.log(slog.New(h.new(&buf)))
				assertRedacted(t, "log line", buf.String())
			})
		}
	}
}

func TestSecretJSON(t *testing.T) {
	s := kve.Secret(canary)
	values := []struct {
		name  string
		value any
		want  string
	}{
		{"alone", s, `"[redacted]"`},
		{"pointer", &s, `"[redacted]"`},
		{"struct", withSecret{"openai", s}, `{"Name":"openai","Value":"[redacted]"}`},
		{"struct with pointer field", withSecretPointer{"openai", &s}, `{"Name":"openai","Value":"[redacted]"}`},
		{"slice", []kve.Secret{s}, `["[redacted]"]`},
		{"map value", map[string]kve.Secret{"k": s}, `{"k":"[redacted]"}`},
	}
	for _, v := range values {
		t.Run(v.name, func(t *testing.T) {
			b, err := json.Marshal(v.value)
			if err != nil {
				t.Fatal(err)
			}
			assertRedacted(t, "json.Marshal", string(b))
			if string(b) != v.want {
				t.Errorf("json.Marshal = %s, want %s", b, v.want)
			}
		})
	}
	t.Run("indented encoder", func(t *testing.T) {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(nested{Inner: withSecret{"openai", s}, List: []kve.Secret{s}}); err != nil {
			t.Fatal(err)
		}
		assertRedacted(t, "json.Encoder", buf.String())
	})
	t.Run("xml", func(t *testing.T) {
		b, err := xml.Marshal(withSecret{"openai", s})
		if err != nil {
			t.Fatal(err)
		}
		assertRedacted(t, "xml.Marshal", string(b))
	})
}

func TestSecretErrors(t *testing.T) {
	s := kve.Secret(canary)
	errs := []struct {
		name string
		err  error
	}{
		{"Errorf %v", fmt.Errorf("call upstream with %v: %w", s, errors.New("refused"))},
		{"Errorf %s", fmt.Errorf("key %s refused", s)},
		{"Errorf %q", fmt.Errorf("key %q refused", s)},
		{"Errorf struct", fmt.Errorf("key %+v refused", withSecret{"openai", s})},
		{"kve.Errorf", kve.Errorf(kve.KindInvalid, "bad_key", "key %v refused", s)},
		{"kve.Wrap with the secret in the cause", kve.Wrap(kve.KindUnavailable, "", "upstream down", fmt.Errorf("dial with %v", s))},
		{"wrapped twice", fmt.Errorf("proxy: %w", fmt.Errorf("swap %v: %w", s, kve.ErrNotFound))},
		{"joined", errors.Join(errors.New("first"), fmt.Errorf("second %v", s))},
	}
	for _, e := range errs {
		t.Run(e.name, func(t *testing.T) {
			assertRedacted(t, "Error()", e.err.Error())
			assertRedacted(t, "%+v of the error", fmt.Sprintf("%+v", e.err))
		})
	}
}

func TestSecretReveal(t *testing.T) {
	for _, v := range []string{"", canary, "kve_hb_dev_FAKE", "with\nnewline", "ünïcode"} {
		if got := kve.Secret(v).Reveal(); got != v {
			t.Errorf("Reveal() = %q, want %q", got, v)
		}
	}
}

func TestSecretLast4(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"sk-test-FAKE-abcd", "abcd"},
		{"123456789", "6789"},
		{"12345678", ""},
		{"1234", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			if got := kve.Secret(tc.in).Last4(); got != tc.want {
				t.Errorf("Last4() = %q, want %q", got, tc.want)
			}
		})
	}
}
