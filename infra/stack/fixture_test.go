package stack

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// withDomain is one region with every optional setting on, as `cdk synth
// -c key=value` would pass them (strings) on top of cdk.json's context.
func withDomain() map[string]any {
	return map[string]any{
		"regions":               "eu-west-1",
		"domain":                "kve.example.com",
		"hostedZoneId":          "Z0123456789ABCDEFGHIJ",
		"hostedZoneName":        "example.com",
		"alertEmail":            "ops@example.com",
		"allowPrivateUpstreams": "10.0.0.0/8,192.168.1.0/24",
		"waf":                   "true",
		"wafRateLimit":          "1200",
		"mailFrom":              "kve@example.com",
		"logRetentionDays":      "90",
		"logLevel":              "debug",
	}
}

// twoRegions is the edge deployment: a global table across two regions.
func twoRegions() map[string]any {
	return map[string]any{
		"regions":      "us-east-1,eu-west-1",
		"domain":       "kve.example.com",
		"hostedZoneId": "Z0123456789ABCDEFGHIJ",
		"alertEmail":   "ops@example.com",
		"waf":          true,
	}
}

// template is one synthesized stack.
type template struct {
	stack awscdk.Stack
	a     assertions.Template
	doc   map[string]any
}

// synth synthesizes kve with cdk.json's context overlaid by context, with
// dummy function assets, and returns the templates, primary stack first.
func synth(t *testing.T, context map[string]any) []*template {
	t.Helper()
	stacks, err := build(t, context)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var out []*template
	for _, st := range stacks {
		a := assertions.Template_FromStack(st, nil)
		out = append(out, &template{stack: st, a: a, doc: *a.ToJSON()})
	}
	return out
}

// build runs what infra/main.go runs: the settings come out of the app's
// context, so their parsing from context values is tested too.
func build(t *testing.T, context map[string]any) ([]awscdk.Stack, error) {
	t.Helper()
	ctx := cdkContext(t)
	maps.Copy(ctx, context)
	if _, ok := context["assetDir"]; !ok {
		ctx["assetDir"] = dummyAssets(t)
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &ctx, Outdir: jsii.String(t.TempDir())})
	s, err := ParseSettings(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) })
	if err != nil {
		return nil, err
	}
	return New(app, s)
}

// cdkContext reads the context of the repository's cdk.json: the feature
// flags and defaults `make synth` uses.
func cdkContext(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		App     string         `json:"app"`
		Output  string         `json:"output"`
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("cdk.json: %v", err)
	}
	if file.App != "go run ./infra" || file.Output != "infra/cdk.out" {
		t.Fatalf("cdk.json: app %q, output %q; want go run ./infra and infra/cdk.out", file.App, file.Output)
	}
	return file.Context
}

// dummyAssets writes the layout `make build` produces, with stand-in
// binaries.
func dummyAssets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, fn := range []string{fnProxy, fnAPI, fnConsole} {
		if err := os.MkdirAll(filepath.Join(dir, fn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fn, "bootstrap"), []byte("#!/bin/sh\n# "+fn+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// has asserts, with the assertions package, that a resource of type typ
// has properties matching props; a mismatch fails the test (assertions
// reports it by panicking through jsii).
func (tp *template) has(t *testing.T, typ string, props map[string]any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s in %s: %v", typ, *tp.stack.StackName(), r)
		}
	}()
	tp.a.HasResourceProperties(jsii.String(typ), props)
}

// arrayWith matches an array that holds, in order among others, elements
// matching each of want; an object in want matches partially.
func arrayWith(want ...any) assertions.Matcher {
	for i, w := range want {
		if m, ok := w.(map[string]any); ok {
			want[i] = assertions.Match_ObjectLike(&m)
		}
	}
	return assertions.Match_ArrayWith(&want)
}

// count asserts how many resources of type typ the stack has.
func (tp *template) count(t *testing.T, typ string, want int) {
	t.Helper()
	if got := len(tp.resources(typ)); got != want {
		t.Errorf("%s in %s: %d resources, want %d", typ, *tp.stack.StackName(), got, want)
	}
}

// resources returns the resources of type typ by logical id.
func (tp *template) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range obj(tp.doc["Resources"]) {
		if res := obj(r); res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// only returns the logical id and properties of the one resource of type
// typ whose properties hold key = value (any, when key is "").
func (tp *template) only(t *testing.T, typ, key string, value any) (string, map[string]any) {
	t.Helper()
	var ids []string
	for id, r := range tp.resources(typ) {
		if key == "" || fmt.Sprint(obj(r["Properties"])[key]) == fmt.Sprint(value) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s with %s=%v in %s: found %d (%v), want 1", typ, key, value, *tp.stack.StackName(), len(ids), ids)
	}
	return ids[0], obj(tp.resources(typ)[ids[0]]["Properties"])
}

// function returns the properties of a kve function by name.
func (tp *template) function(t *testing.T, name string) map[string]any {
	t.Helper()
	_, p := tp.only(t, "AWS::Lambda::Function", "Description", "kve "+name)
	return p
}

// statement is an IAM statement with its intrinsics flattened to strings.
type statement struct {
	Effect     string
	Actions    []string
	Resources  []string
	Conditions string
}

// statements returns every statement of every policy attached to the role
// of function name.
func (tp *template) statements(t *testing.T, name string) []statement {
	t.Helper()
	role := flat(tp.function(t, name)["Role"]) // ${<RoleId>.Arn}
	roleID := strings.TrimSuffix(strings.TrimPrefix(role, "${"), ".Arn}")
	var out []statement
	for _, p := range tp.resources("AWS::IAM::Policy") {
		props := obj(p["Properties"])
		for _, r := range list(props["Roles"]) {
			if flat(r) == "${"+roleID+"}" {
				out = append(out, policyStatements(props["PolicyDocument"])...)
			}
		}
	}
	return out
}

// policyStatements flattens a policy document.
func policyStatements(doc any) []statement {
	var out []statement
	for _, s := range list(obj(doc)["Statement"]) {
		st := obj(s)
		c := ""
		if cond, ok := st["Condition"]; ok {
			b, _ := json.Marshal(flatten(cond))
			c = string(b)
		}
		out = append(out, statement{
			Effect:     fmt.Sprint(st["Effect"]),
			Actions:    strs(st["Action"]),
			Resources:  strs(st["Resource"]),
			Conditions: c,
		})
	}
	return out
}

// allStatements returns the statements of every IAM policy in the stack,
// inline role policies included, by the policy's logical id.
func (tp *template) allStatements() map[string][]statement {
	out := map[string][]statement{}
	for id, p := range tp.resources("AWS::IAM::Policy") {
		out[id] = policyStatements(obj(p["Properties"])["PolicyDocument"])
	}
	for id, r := range tp.resources("AWS::IAM::Role") {
		for _, p := range list(obj(r["Properties"])["Policies"]) {
			out[id] = append(out[id], policyStatements(obj(p)["PolicyDocument"])...)
		}
	}
	return out
}

// outputs returns the stack outputs' flattened values by id.
func (tp *template) outputs() map[string]string {
	out := map[string]string{}
	for id, o := range obj(tp.doc["Outputs"]) {
		out[id] = flat(obj(o)["Value"])
	}
	return out
}

// flat renders a CloudFormation value as one string: {"Ref": "X"} as
// ${X}, {"Fn::GetAtt": ["X", "Arn"]} as ${X.Arn}, Fn::Join joined.
func flat(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case map[string]any:
		if r, ok := x["Ref"]; ok {
			return "${" + fmt.Sprint(r) + "}"
		}
		if g, ok := x["Fn::GetAtt"]; ok {
			a := list(g)
			return "${" + fmt.Sprint(a[0]) + "." + fmt.Sprint(a[1]) + "}"
		}
		if j, ok := x["Fn::Join"]; ok {
			a := list(j)
			var parts []string
			for _, p := range list(a[1]) {
				parts = append(parts, flat(p))
			}
			return strings.Join(parts, fmt.Sprint(a[0]))
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// flatten replaces every intrinsic inside v by its flat string.
func flatten(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range []string{"Ref", "Fn::GetAtt", "Fn::Join"} {
			if _, ok := x[k]; ok {
				return flat(x)
			}
		}
		out := map[string]any{}
		for k, e := range x {
			out[k] = flatten(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = flatten(e)
		}
		return out
	}
	return v
}

func obj(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

// strs reads a string-or-list field (Action, Resource) as sorted strings.
func strs(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, e := range l {
			out = append(out, flat(e))
		}
	} else if v != nil {
		out = []string{flat(v)}
	}
	sort.Strings(out)
	return out
}

// covers reports whether an IAM pattern in patterns (an action like
// "dynamodb:*", or "*") matches s.
func covers(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == s || (strings.HasSuffix(p, "*") && strings.HasPrefix(s, strings.TrimSuffix(p, "*"))) {
			return true
		}
	}
	return false
}
