package stack

import (
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// watched names what an alarm watches: "namespace metric statistic
// threshold", or its math expression with its metrics.
func watched(p map[string]any) string {
	if name, ok := p["MetricName"]; ok {
		return strings.Join([]string{flat(p["Namespace"]), flat(name), flat(p["Statistic"]), flat(p["Threshold"])}, " ")
	}
	var parts []string
	for _, m := range list(p["Metrics"]) {
		m := obj(m)
		if e, ok := m["Expression"]; ok {
			parts = append([]string{flat(e)}, parts...)
			continue
		}
		stat := obj(m["MetricStat"])
		metric := obj(stat["Metric"])
		parts = append(parts, flat(metric["Namespace"])+" "+flat(metric["MetricName"])+" "+flat(stat["Stat"]))
	}
	return strings.Join(parts, " | ") + " " + flat(p["Threshold"])
}

func TestAlarms(t *testing.T) {
	tp := synth(t, withDomain())[0]
	topicID, _ := tp.only(t, "AWS::SNS::Topic", "DisplayName", "kve alarms")
	var got []string
	for id, a := range tp.resources("AWS::CloudWatch::Alarm") {
		p := obj(a["Properties"])
		got = append(got, watched(p))
		for _, actions := range []string{"AlarmActions", "OKActions"} {
			if diff := cmp.Diff([]string{"${" + topicID + "}"}, strs(p[actions])); diff != "" {
				t.Errorf("%s %s (-want +got):\n%s", id, actions, diff)
			}
		}
		if p["TreatMissingData"] != "notBreaching" || p["ComparisonOperator"] != "GreaterThanOrEqualToThreshold" {
			t.Errorf("%s: missing data %v, comparison %v", id, p["TreatMissingData"], p["ComparisonOperator"])
		}
	}
	sort.Strings(got)
	want := []string{
		"AWS/ApiGateway 5XXError Average 0.05", // main API
		"AWS/ApiGateway 5XXError Average 0.05", // host-form API
		"AWS/Lambda Errors Sum 5", "AWS/Lambda Errors Sum 5", "AWS/Lambda Errors Sum 5",
		"AWS/Lambda Throttles Sum 1", "AWS/Lambda Throttles Sum 1", "AWS/Lambda Throttles Sum 1",
		"AWS/SNS NumberOfNotificationsFailed Sum 1",
		"AWS/SQS ApproximateNumberOfMessagesVisible Maximum 1",
		"reads + writes | AWS/DynamoDB ReadThrottleEvents Sum | AWS/DynamoDB WriteThrottleEvents Sum 1",
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("alarms (-want +got):\n%s", diff)
	}

	t.Run("each function and API is watched", func(t *testing.T) {
		var dims []string
		for _, a := range tp.resources("AWS::CloudWatch::Alarm") {
			for _, d := range list(obj(a["Properties"])["Dimensions"]) {
				dims = append(dims, flat(obj(d)["Name"])+"="+flat(obj(d)["Value"]))
			}
		}
		for _, fn := range []string{fnProxy, fnAPI, fnConsole} {
			id, _ := tp.only(t, "AWS::Lambda::Function", "Description", "kve "+fn)
			if n := count(dims, "FunctionName=${"+id+"}"); n != 2 {
				t.Errorf("%s: %d alarms, want errors and throttles", fn, n)
			}
		}
		for _, api := range []string{"kve", "kve-hosts"} {
			if n := count(dims, "ApiName="+api); n != 1 {
				t.Errorf("API %s: %d alarms, want 1", api, n)
			}
		}
	})
	t.Run("dashboard", func(t *testing.T) {
		_, d := tp.only(t, "AWS::CloudWatch::Dashboard", "", nil)
		body := flat(d["DashboardBody"])
		for _, metric := range []string{"5XXError", "Invocations", "Throttles", "ConsumedReadCapacityUnits", "NumberOfNotificationsFailed", "ApproximateNumberOfMessagesVisible", `"type":"alarm"`} {
			if !strings.Contains(body, metric) {
				t.Errorf("dashboard does not show %s", metric)
			}
		}
	})
}

func count(list []string, s string) int {
	n := 0
	for _, e := range list {
		if e == s {
			n++
		}
	}
	return n
}
