package stack

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/stackenv"
)

func TestAlertTopic(t *testing.T) {
	tp := synth(t, nil)[0]
	keyID, _ := tp.only(t, "AWS::KMS::Key", "", nil)
	topicID, p := tp.only(t, "AWS::SNS::Topic", "TopicName", "kve-alerts")

	t.Run("encrypted, signature version 2", func(t *testing.T) {
		got := map[string]any{"key": flat(p["KmsMasterKeyId"]), "signature": p["SignatureVersion"]}
		want := map[string]any{"key": "${" + keyID + ".Arn}", "signature": "2"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("alert topic (-want +got):\n%s", diff)
		}
	})
	t.Run("TLS only", func(t *testing.T) {
		tp.has(t, "AWS::SNS::TopicPolicy", map[string]any{
			"Topics": []any{map[string]any{"Ref": topicID}},
			"PolicyDocument": map[string]any{"Statement": arrayWith(map[string]any{
				"Effect":    "Deny",
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
			})},
		})
	})
	t.Run("HTTPS delivery policy with retries", func(t *testing.T) {
		_, cr := tp.only(t, "Custom::AWS", "", nil)
		var call struct {
			Service    string
			Action     string
			Parameters struct {
				TopicArn, AttributeName, AttributeValue string
			}
		}
		if err := json.Unmarshal([]byte(flat(cr["Create"])), &call); err != nil {
			t.Fatalf("custom resource Create: %v", err)
		}
		if call.Service != "SNS" || call.Action != "setTopicAttributes" || call.Parameters.AttributeName != "DeliveryPolicy" ||
			call.Parameters.TopicArn != "${"+topicID+"}" {
			t.Errorf("call = %+v, want SNS setTopicAttributes DeliveryPolicy on the alert topic", call)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(call.Parameters.AttributeValue), &got); err != nil {
			t.Fatalf("delivery policy: %v", err)
		}
		want := map[string]any{"http": map[string]any{
			"defaultHealthyRetryPolicy": map[string]any{
				"minDelayTarget": 5.0, "maxDelayTarget": 600.0, "numRetries": 15.0,
				"numNoDelayRetries": 0.0, "numMinDelayRetries": 2.0, "numMaxDelayRetries": 3.0,
				"backoffFunction": "exponential",
			},
			"disableSubscriptionOverrides": false,
			"defaultThrottlePolicy":        map[string]any{"maxReceivesPerSecond": 10.0},
			"defaultRequestPolicy":         map[string]any{"headerContentType": "application/json"},
		}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("delivery policy (-want +got):\n%s", diff)
		}
		if flat(cr["Update"]) != flat(cr["Create"]) {
			t.Error("an update of the stack does not set the same delivery policy")
		}
	})
	t.Run("the delivery policy call may touch only the alert topic", func(t *testing.T) {
		var found bool
		for _, stmts := range tp.allStatements() {
			for _, s := range stmts {
				if covers(s.Actions, "sns:SetTopicAttributes") {
					found = true
					if diff := cmp.Diff([]string{"${" + topicID + "}"}, s.Resources); diff != "" {
						t.Errorf("sns:SetTopicAttributes resources (-want +got):\n%s", diff)
					}
				}
			}
		}
		if !found {
			t.Error("no policy allows sns:SetTopicAttributes")
		}
	})
	t.Run("dead-letter queue", func(t *testing.T) {
		qID, q := tp.only(t, "AWS::SQS::Queue", "", nil)
		got := map[string]any{"key": flat(q["KmsMasterKeyId"]), "retention": q["MessageRetentionPeriod"]}
		want := map[string]any{"key": "${" + keyID + ".Arn}", "retention": 1209600.0}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("queue (-want +got):\n%s", diff)
		}
		tp.has(t, "AWS::SQS::QueuePolicy", map[string]any{
			"PolicyDocument": map[string]any{"Statement": arrayWith(map[string]any{
				"Effect":    "Allow",
				"Action":    "sqs:SendMessage",
				"Principal": map[string]any{"Service": "sns.amazonaws.com"},
				"Condition": map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": map[string]any{"Ref": topicID}}},
			})},
		})
		if got := tp.outputs()["AlertDeadLetterQueueArn"]; got != "${"+qID+".Arn}" {
			t.Errorf("AlertDeadLetterQueueArn = %q", got)
		}
	})
	t.Run("no subscription without an alert email", func(t *testing.T) {
		tp.count(t, "AWS::SNS::Subscription", 0)
	})
}

func TestAlertEmail(t *testing.T) {
	tp := synth(t, withDomain())[0]
	alertID, _ := tp.only(t, "AWS::SNS::Topic", "TopicName", "kve-alerts")
	alarmID, _ := tp.only(t, "AWS::SNS::Topic", "DisplayName", "kve alarms")
	qID, _ := tp.only(t, "AWS::SQS::Queue", "", nil)
	subs := map[string]map[string]any{}
	for _, s := range tp.resources("AWS::SNS::Subscription") {
		p := obj(s["Properties"])
		subs[flat(p["TopicArn"])] = p
	}
	t.Run("on the alert topic, with the dead-letter queue", func(t *testing.T) {
		p := subs["${"+alertID+"}"]
		got := map[string]any{"protocol": p["Protocol"], "endpoint": p["Endpoint"], "dlq": flat(obj(p["RedrivePolicy"])["deadLetterTargetArn"])}
		want := map[string]any{"protocol": "email", "endpoint": "ops@example.com", "dlq": "${" + qID + ".Arn}"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("alert subscription (-want +got):\n%s", diff)
		}
	})
	t.Run("on the alarm topic", func(t *testing.T) {
		p := subs["${"+alarmID+"}"]
		if p["Protocol"] != "email" || p["Endpoint"] != "ops@example.com" {
			t.Errorf("alarm subscription = %v", p)
		}
	})
	if len(subs) != 2 {
		t.Errorf("%d subscriptions, want 2", len(subs))
	}
}

func TestAlarmTopicEncrypted(t *testing.T) {
	tp := synth(t, nil)[0]
	keyID, _ := tp.only(t, "AWS::KMS::Key", "", nil)
	_, p := tp.only(t, "AWS::SNS::Topic", "DisplayName", "kve alarms")
	if got := flat(p["KmsMasterKeyId"]); got != "${"+keyID+".Arn}" {
		t.Errorf("alarm topic key = %s", got)
	}
}

// TestAlertDeadLetterQueueEnvironment: the api and console of the primary
// region, which make the organizations' alert subscriptions, are told the
// dead-letter queue to name in each one's RedrivePolicy; the proxy, which
// only publishes, is not, and gets the public URL its alerts link to. The
// other regions, where subscriptions are not managed, get no queue.
func TestAlertDeadLetterQueueEnvironment(t *testing.T) {
	stacks := synth(t, twoRegions())
	primary, secondary := stacks[0], stacks[1]
	qID, _ := primary.only(t, "AWS::SQS::Queue", "", nil)
	for _, tt := range []struct {
		tp      *template
		fn, dlq string
	}{
		{primary, fnAPI, "${" + qID + ".Arn}"}, {primary, fnConsole, "${" + qID + ".Arn}"}, {primary, fnProxy, ""},
		{secondary, fnAPI, ""}, {secondary, fnConsole, ""}, {secondary, fnProxy, ""},
	} {
		vars := obj(obj(tt.tp.function(t, tt.fn)["Environment"])["Variables"])
		if got := flat(vars[stackenv.EnvAlertDLQ]); got != tt.dlq {
			t.Errorf("%s %s: %s = %q, want %q", *tt.tp.stack.StackName(), tt.fn, stackenv.EnvAlertDLQ, got, tt.dlq)
		}
		if tt.fn == fnProxy && flat(vars[stackenv.EnvPublicURL]) == "" {
			t.Errorf("%s proxy: %s is not set", *tt.tp.stack.StackName(), stackenv.EnvPublicURL)
		}
	}
}

// TestSecretScanningEnvironment: the leak-report settings reach the api
// (which serves the endpoint) and stay off the proxy; unset, nothing is set.
func TestSecretScanningEnvironment(t *testing.T) {
	keys := `{"public_keys":[{"key_identifier":"k1","key":"-----BEGIN PUBLIC KEY-----\nFAKE\n-----END PUBLIC KEY-----","is_current":true}]}`
	tp := synth(t, map[string]any{"secretScanningKeys": keys, "leakSuspendEnvs": "prd"})[0]
	api := obj(obj(tp.function(t, fnAPI)["Environment"])["Variables"])
	if flat(api[stackenv.EnvSecretScanningKeys]) != keys || flat(api[stackenv.EnvLeakSuspendEnvs]) != "prd" {
		t.Errorf("api: %s = %q, %s = %q", stackenv.EnvSecretScanningKeys, flat(api[stackenv.EnvSecretScanningKeys]),
			stackenv.EnvLeakSuspendEnvs, flat(api[stackenv.EnvLeakSuspendEnvs]))
	}
	if proxy := obj(obj(tp.function(t, fnProxy)["Environment"])["Variables"]); proxy[stackenv.EnvSecretScanningKeys] != nil {
		t.Error("the proxy got the secret-scanning keys")
	}
	plain := obj(obj(synth(t, map[string]any{})[0].function(t, fnAPI)["Environment"])["Variables"])
	if plain[stackenv.EnvSecretScanningKeys] != nil || plain[stackenv.EnvLeakSuspendEnvs] != nil {
		t.Error("unset settings became variables")
	}
}
