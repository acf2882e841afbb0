package stack

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The cost note in infra/README.md prices what these count. When one of
// them changes, the note must change with it.
func TestCostInventory(t *testing.T) {
	tests := []struct {
		name    string
		context map[string]any
		want    inventory
	}{
		{"default", nil, inventory{Secrets: 3, Keys: 1, AlarmMetrics: 11, Dashboards: 1, ProxyMemoryMB: 512}},
		// The host-form API adds one alarm; the WAF is one web ACL with one rule.
		{"with domain and WAF", withDomain(), inventory{Secrets: 3, Keys: 1, AlarmMetrics: 12, Dashboards: 1, ProxyMemoryMB: 512, WebACLRules: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, inventoryOf(t, synth(t, tt.context)[0])); diff != "" {
				t.Errorf("inventory (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("each further region", func(t *testing.T) {
		// A secondary region adds a key, replicas of the three secrets (billed
		// as secrets), its alarms (no alert-topic alarms there), a dashboard
		// and a health check; the primary gets a health check too.
		stacks := synth(t, twoRegions())
		want := inventory{Keys: 1, AlarmMetrics: 10, Dashboards: 1, ProxyMemoryMB: 512, WebACLRules: 1, HealthChecks: 1}
		if diff := cmp.Diff(want, inventoryOf(t, stacks[1])); diff != "" {
			t.Errorf("secondary region (-want +got):\n%s", diff)
		}
		replicas := 0
		for _, s := range stacks[0].resources("AWS::SecretsManager::Secret") {
			replicas += len(list(obj(s["Properties"])["ReplicaRegions"]))
		}
		if replicas != 3 {
			t.Errorf("%d secret replicas, want 3", replicas)
		}
	})
}

// inventory is what a stack's monthly price depends on.
type inventory struct {
	Secrets, Keys, AlarmMetrics, Dashboards, WebACLRules, HealthChecks int
	ProxyMemoryMB                                                      float64
}

func inventoryOf(t *testing.T, tp *template) inventory {
	t.Helper()
	inv := inventory{
		Secrets:      len(tp.resources("AWS::SecretsManager::Secret")),
		Keys:         len(tp.resources("AWS::KMS::Key")),
		Dashboards:   len(tp.resources("AWS::CloudWatch::Dashboard")),
		HealthChecks: len(tp.resources("AWS::Route53::HealthCheck")),
	}
	// CloudWatch bills an alarm per metric it evaluates: a metric math
	// alarm costs one per metric in its expression.
	for _, a := range tp.resources("AWS::CloudWatch::Alarm") {
		p := obj(a["Properties"])
		if p["MetricName"] != nil {
			inv.AlarmMetrics++
		}
		for _, m := range list(p["Metrics"]) {
			if obj(m)["MetricStat"] != nil {
				inv.AlarmMetrics++
			}
		}
	}
	for _, w := range tp.resources("AWS::WAFv2::WebACL") {
		inv.WebACLRules += len(list(obj(w["Properties"])["Rules"]))
	}
	inv.ProxyMemoryMB, _ = tp.function(t, fnProxy)["MemorySize"].(float64)
	return inv
}
