package stack

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWAF(t *testing.T) {
	t.Run("off by default", func(t *testing.T) {
		tp := synth(t, nil)[0]
		tp.count(t, "AWS::WAFv2::WebACL", 0)
		tp.count(t, "AWS::WAFv2::WebACLAssociation", 0)
	})
	t.Run("rate-based rule on every API", func(t *testing.T) {
		tp := synth(t, withDomain())[0]
		aclID, p := tp.only(t, "AWS::WAFv2::WebACL", "", nil)
		rules := list(p["Rules"])
		if len(rules) != 1 {
			t.Fatalf("%d rules, want 1", len(rules))
		}
		rule := obj(rules[0])
		got := map[string]any{
			"scope": p["Scope"], "default": p["DefaultAction"],
			"action": rule["Action"], "statement": rule["Statement"],
			"sampled":     obj(p["VisibilityConfig"])["SampledRequestsEnabled"],
			"ruleSampled": obj(rule["VisibilityConfig"])["SampledRequestsEnabled"],
		}
		want := map[string]any{
			"scope": "REGIONAL", "default": map[string]any{"Allow": map[string]any{}},
			"action": map[string]any{"Block": map[string]any{}},
			"statement": map[string]any{"RateBasedStatement": map[string]any{
				"Limit": 1200.0, "AggregateKeyType": "IP", "EvaluationWindowSec": 300.0,
			}},
			// Sampled requests would keep headers, and headers carry tokens.
			"sampled": false, "ruleSampled": false,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("web ACL (-want +got):\n%s", diff)
		}
		stages := map[string]bool{}
		for id := range tp.resources("AWS::ApiGateway::Stage") {
			stages[id] = true
		}
		associated := map[string]bool{}
		for _, a := range tp.resources("AWS::WAFv2::WebACLAssociation") {
			ap := obj(a["Properties"])
			if flat(ap["WebACLArn"]) != "${"+aclID+".Arn}" {
				t.Errorf("association with %s", flat(ap["WebACLArn"]))
			}
			for id := range stages {
				if containsRef(flat(ap["ResourceArn"]), id) {
					associated[id] = true
				}
			}
		}
		if diff := cmp.Diff(stages, associated); diff != "" {
			t.Errorf("stages behind the WAF (-want +got):\n%s", diff)
		}
	})
}

// containsRef reports whether s refers to the resource with logical id id.
func containsRef(s, id string) bool {
	return strings.Contains(s, "${"+id+"}") || strings.Contains(s, "${"+id+".")
}
