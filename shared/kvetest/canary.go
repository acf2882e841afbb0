package kvetest

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// canary is a secret value an instance handed out or was given, which must
// never come back in a log line, a response or a file in clear.
type canary struct {
	label string // says what it is, never the value
	value string
}

// forms are the shapes a leaked secret may take: as is, URL-encoded (a key
// in a query string) and base64 (HTTP basic auth), as kve's own redaction
// knows them.
func (c canary) forms() []string {
	f := []string{c.value}
	if e := url.QueryEscape(c.value); e != c.value {
		f = append(f, e)
	}
	return append(f, base64.StdEncoding.EncodeToString([]byte(c.value)))
}

// Canary returns a fresh obviously fake secret: prefix, "CANARY-" and 24
// random characters, so that every run greps for a value no code could
// contain by accident.
func Canary(prefix string) string { return prefix + "CANARY-" + rand.Text()[:24] }

// watch adds a secret to what the canary check looks for.
func (in *Instance) watch(label, value string) {
	if value == "" {
		return
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.canaries = append(in.canaries, canary{label: label, value: value})
}

// Watch adds a secret the test handed to kve some other way to what the
// canary check looks for.
func (in *Instance) Watch(label, value string) { in.watch(label, value) }

// Leak is a canary found where it must not be.
type Leak struct {
	Canary string // what leaked (a label, never the value)
	Where  string // the log, a response, a file
	Offset int
}

// String says what leaked where, without the value.
func (l Leak) String() string {
	return fmt.Sprintf("%s found in %s at byte %d", l.Canary, l.Where, l.Offset)
}

// Leaks greps everything the test can see for every secret the instance
// handed out or was given: the log, what kve printed, every response its
// clients received (except the one-time reveals) and every file in the data
// directory (the SQLite database and its WAL, the sealed secrets file). A
// hash or ciphertext of a secret is no hit; only clear forms are.
func (in *Instance) Leaks(t testing.TB) []Leak {
	t.Helper()
	in.mu.Lock()
	canaries := append([]canary(nil), in.canaries...)
	in.mu.Unlock()
	return findLeaks(canaries, in.sources(t, false))
}

// Find returns where value appears in clear among what Leaks reads, the
// exempt one-time reveals included (their names say so): the positive
// control that shows the check reads what it claims to.
func (in *Instance) Find(t testing.TB, value string) []string {
	t.Helper()
	var where []string
	for _, l := range findLeaks([]canary{{label: "value", value: value}}, in.sources(t, true)) {
		where = append(where, l.Where)
	}
	return where
}

// sources returns what the canary check reads, by name.
func (in *Instance) sources(t testing.TB, withExempt bool) map[string]string {
	t.Helper()
	sources := map[string]string{"the log": in.logs.String(), "standard output": in.stdout.String()}
	for i, r := range in.seen.responses() {
		switch {
		case !r.Exempt:
			sources[fmt.Sprintf("response %d (%s %s)", i, r.Method, r.Path)] = r.text()
		case withExempt:
			sources[fmt.Sprintf("exempt response %d (%s %s)", i, r.Method, r.Path)] = r.text()
		}
	}
	files, err := os.ReadDir(in.Data)
	if err != nil {
		t.Fatalf("read data directory: %v", err)
	}
	for _, f := range files {
		if f.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(in.Data, f.Name()))
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // the WAL goes away at close
			t.Fatalf("read %s: %v", f.Name(), err)
		}
		sources["file "+f.Name()] = string(b)
	}
	return sources
}

func findLeaks(canaries []canary, sources map[string]string) []Leak {
	var leaks []Leak
	for where, text := range sources {
		for _, c := range canaries {
			for _, f := range c.forms() {
				if i := strings.Index(text, f); i >= 0 {
					leaks = append(leaks, Leak{Canary: c.label, Where: where, Offset: i})
				}
			}
		}
	}
	sort.Slice(leaks, func(i, j int) bool { return leaks[i].String() < leaks[j].String() })
	return leaks
}

// redact replaces every known secret in s, so that a failing test's output
// never shows one.
func (in *Instance) redact(s string) string {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, c := range in.canaries {
		for _, f := range c.forms() {
			s = strings.ReplaceAll(s, f, "["+c.label+"]")
		}
	}
	return s
}
