package usage

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// filled returns a record with every field set, by reflection, so that a
// field added to kve.Usage shows up here without anyone listing it.
func filled(t *testing.T) kve.Usage {
	t.Helper()
	var u kve.Usage
	v := reflect.ValueOf(&u).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch name := v.Type().Field(i).Name; f.Kind() {
		case reflect.String:
			f.SetString(name + " \"quoted\" \\ \x01 ü\xff")
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(1000 + i))
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Struct:
			if f.Type() != reflect.TypeOf(time.Time{}) {
				t.Fatalf("field %s of type %s: teach appendUsage and this test about it", name, f.Type())
			}
			f.Set(reflect.ValueOf(time.Date(2026, 11, 27, 12, 34, 56, 789123456, time.UTC)))
		default:
			t.Fatalf("field %s of kind %s: teach appendUsage and this test about it", name, f.Kind())
		}
	}
	return u
}

func TestSpoolEncodingRoundTrips(t *testing.T) {
	u := filled(t)
	want := u
	for _, s := range []*string{&want.RequestID, &want.OrgID, &want.TokenID, &want.UserID, &want.Provider, &want.Method,
		&want.Path, &want.Model, &want.ClientIP, &want.Origin, &want.UserAgent, &want.Reason} {
		*s = (*s)[:len(*s)-1] + "\ufffd" // invalid UTF-8 reads back as encoding/json would
	}
	want.Env = kve.Env(string(want.Env)[:len(want.Env)-1] + "\ufffd")
	for _, tc := range []struct {
		name string
		line []byte
		get  func(l spoolLine) (kve.Usage, int64)
	}{
		{"hold", appendHold(nil, &u, 4242), func(l spoolLine) (kve.Usage, int64) { return l.Hold.Usage, l.Hold.Micro }},
		{"done", appendDone(nil, &u, true), func(l spoolLine) (kve.Usage, int64) { return *l.Done, 4242 }},
		{"done, its hold spooled", appendDone(nil, &u, false), func(l spoolLine) (kve.Usage, int64) {
			if l.Done.OrgID != "" || l.Done.UserAgent != "" {
				t.Errorf("a record line after its hold repeats the hold's fields: %+v", l.Done)
			}
			withIdentity(l.Done, &want)
			return *l.Done, 4242
		}},
		{"zero record", appendDone(nil, &kve.Usage{RequestID: "req_1"}, true), func(l spoolLine) (kve.Usage, int64) { return *l.Done, 4242 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.line[len(tc.line)-1] != '\n' {
				t.Fatal("a line must end in a newline")
			}
			var l spoolLine
			if err := json.Unmarshal(tc.line, &l); err != nil {
				t.Fatalf("%s: %v", tc.line, err)
			}
			got, micro := tc.get(l)
			expect := want
			if tc.name == "zero record" {
				expect = kve.Usage{RequestID: "req_1"}
			}
			if diff := cmp.Diff(expect, got); diff != "" || micro != 4242 {
				t.Errorf("round trip (-want +got):\n%s (micro %d)", diff, micro)
			}
		})
	}
}

func BenchmarkSpoolLine(b *testing.B) {
	u := kve.Usage{RequestID: kve.NewID(kve.PrefixRequest, testNow), At: testNow, OrgID: "org_01kjpwd6m0xx69ezaj35rjtze1",
		TokenID: "tok_01kjpwd6m0xx69ezaj35rjtze1", Env: kve.EnvPrd, Provider: "openai", Method: "POST",
		Path: "/v1/chat/completions", Model: "gpt-4o-mini-2024-07-18", Status: 200, Duration: 3 * time.Millisecond,
		BytesIn: 120, BytesOut: 672, PromptTokens: 19, CompletionTokens: 9, CostMicro: 9, ClientIP: "127.0.0.1",
		UserAgent: "OpenAI/Python 1.99.0"}
	buf := make([]byte, 0, 1024)
	b.Run("hold", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendHold(buf[:0], &u, 615)
		}
	})
	b.Run("done", func(b *testing.B) { // a record line after its hold
		b.ReportAllocs()
		for b.Loop() {
			buf = appendDone(buf[:0], &u, false)
		}
	})
}

// FuzzAppendString: any string reads back as encoding/json reads back its
// own encoding of it.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uo\te`, "\x00\x1f\x7f", "ü\xff\xfe€", "a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var got, want string
		if err := json.Unmarshal(appendString(nil, s), &got); err != nil {
			t.Fatalf("%q encoded as %s: %v", s, appendString(nil, s), err)
		}
		enc, _ := json.Marshal(s)
		json.Unmarshal(enc, &want)
		if got != want {
			t.Fatalf("%q read back as %q, encoding/json's as %q", s, got, want)
		}
	})
}
