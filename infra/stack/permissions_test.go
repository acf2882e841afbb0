package stack

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const keySecretsARN = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:kve/*/keys/*"

// No policy in any stack of any deployment gives a secretsmanager: or
// dynamodb: action on "*", or on any wildcard but the key namespace
// kve/*/keys/*.
func TestNoWildcardResources(t *testing.T) {
	deployments := map[string]map[string]any{"default": nil, "with domain": withDomain(), "two regions": twoRegions()}
	for name, context := range deployments {
		t.Run(name, func(t *testing.T) {
			for _, tp := range synth(t, context) {
				for policy, stmts := range tp.allStatements() {
					for _, s := range stmts {
						if s.Effect != "Allow" {
							continue
						}
						for _, service := range []string{"secretsmanager:", "dynamodb:"} {
							if !touches(s.Actions, service) {
								continue
							}
							for _, r := range s.Resources {
								if strings.Contains(strings.Replace(r, "kve/*/keys/*", "", 1), "*") {
									t.Errorf("%s %s: %v on %s", *tp.stack.StackName(), policy, s.Actions, r)
								}
							}
						}
					}
				}
			}
		})
	}
}

// touches reports whether any of actions is, or covers, an action of
// service ("dynamodb:").
func touches(actions []string, service string) bool {
	for _, a := range actions {
		if a == "*" || strings.HasPrefix(a, service) {
			return true
		}
	}
	return false
}

// ids holds the logical ids of the resources the functions' policies name.
type ids struct {
	table, key, topic, pepper, seal, setup string
}

func resourceIDs(t *testing.T, tp *template) ids {
	t.Helper()
	secret := func(name string) string {
		id, _ := tp.only(t, "AWS::SecretsManager::Secret", "Name", name)
		return "${" + id + "}"
	}
	table, _ := tp.only(t, "AWS::DynamoDB::GlobalTable", "", nil)
	key, _ := tp.only(t, "AWS::KMS::Key", "", nil)
	topic, _ := tp.only(t, "AWS::SNS::Topic", "TopicName", "kve-alerts")
	return ids{
		table: "${" + table + ".Arn}", key: "${" + key + ".Arn}", topic: "${" + topic + "}",
		pepper: secret("kve/system/pepper"), seal: secret("kve/system/seal"), setup: secret("kve/system/setup"),
	}
}

func via(service string) string {
	return `{"StringEquals":{"kms:ViaService":"` + service + `.${AWS::Region}.amazonaws.com"}}`
}

// withoutLogs drops the statement that lets a role write its log group
// (TestFunctions pins it) and sorts the rest.
func withoutLogs(stmts []statement) []statement {
	var out []statement
	for _, s := range stmts {
		if !covers(s.Actions, "logs:PutLogEvents") {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, _ := json.Marshal(out[i])
		b, _ := json.Marshal(out[j])
		return string(a) < string(b)
	})
	return out
}

func TestProxyPermissions(t *testing.T) {
	tp := synth(t, nil)[0]
	id := resourceIDs(t, tp)
	want := withoutLogs([]statement{
		// Read tokens, write usage; never delete, never scan.
		{Effect: "Allow", Actions: []string{"dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}, Resources: []string{id.table}},
		{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*"}, Resources: []string{id.key}, Conditions: via("dynamodb")},
		// Real keys and the pepper; not the sealing key, not the setup code.
		{Effect: "Allow", Actions: []string{"secretsmanager:GetSecretValue"}, Resources: sorted(keySecretsARN, id.pepper)},
		{Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{id.key}, Conditions: via("secretsmanager")},
		// Publish to the alert topic and nothing else.
		{Effect: "Allow", Actions: []string{"sns:Publish"}, Resources: []string{id.topic}},
		{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey*"}, Resources: []string{id.key}, Conditions: via("sns")},
	})
	if diff := cmp.Diff(want, withoutLogs(tp.statements(t, fnProxy))); diff != "" {
		t.Errorf("proxy policy (-want +got):\n%s", diff)
	}
}

func TestManagementPermissions(t *testing.T) {
	tp := synth(t, nil)[0]
	id := resourceIDs(t, tp)
	want := withoutLogs([]statement{
		{Effect: "Allow", Actions: []string{"dynamodb:ConditionCheckItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"}, Resources: []string{id.table}},
		{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*"}, Resources: []string{id.key}, Conditions: via("dynamodb")},
		// Create key secrets only encrypted with kve's key; replace,
		// delete, describe and tag them; never read them.
		{Effect: "Allow", Actions: []string{"secretsmanager:CreateSecret"}, Resources: []string{keySecretsARN}, Conditions: `{"StringEquals":{"secretsmanager:KmsKeyArn":"` + id.key + `"}}`},
		{Effect: "Allow", Actions: []string{"secretsmanager:DeleteSecret", "secretsmanager:DescribeSecret", "secretsmanager:PutSecretValue", "secretsmanager:TagResource"}, Resources: []string{keySecretsARN}},
		{Effect: "Deny", Actions: []string{"secretsmanager:GetSecretValue"}, Resources: []string{keySecretsARN}},
		{Effect: "Allow", Actions: []string{"secretsmanager:GetSecretValue"}, Resources: sorted(id.pepper, id.seal, id.setup)},
		{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey"}, Resources: []string{id.key}, Conditions: via("secretsmanager")},
		{Effect: "Allow", Actions: []string{"sns:GetSubscriptionAttributes", "sns:ListSubscriptionsByTopic", "sns:Publish", "sns:SetSubscriptionAttributes", "sns:Subscribe", "sns:Unsubscribe"}, Resources: []string{id.topic}},
		{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey*"}, Resources: []string{id.key}, Conditions: via("sns")},
	})
	for _, fn := range []string{fnAPI, fnConsole} {
		t.Run(fn, func(t *testing.T) {
			if diff := cmp.Diff(want, withoutLogs(tp.statements(t, fn))); diff != "" {
				t.Errorf("%s policy (-want +got):\n%s", fn, diff)
			}
		})
	}
}

// Whatever else changes in their policies, the api and console can never
// read a real key: no Allow reaches GetSecretValue on kve/*/keys/*, and an
// explicit Deny stands in the way of any that would.
func TestManagementNeverReadsKeys(t *testing.T) {
	deployments := map[string]map[string]any{"default": nil, "with domain": withDomain(), "two regions": twoRegions()}
	for name, context := range deployments {
		t.Run(name, func(t *testing.T) {
			for _, tp := range synth(t, context) {
				for _, fn := range []string{fnAPI, fnConsole} {
					var denied bool
					for _, s := range tp.statements(t, fn) {
						if !covers(s.Actions, "secretsmanager:GetSecretValue") {
							continue
						}
						for _, r := range s.Resources {
							keys := r == "*" || strings.Contains(r, "/keys/") || strings.HasSuffix(r, ":secret:*")
							switch {
							case keys && s.Effect == "Allow":
								t.Errorf("%s %s: Allow GetSecretValue on %s", *tp.stack.StackName(), fn, r)
							case keys && s.Effect == "Deny" && strings.HasSuffix(r, ":secret:kve/*/keys/*"):
								denied = true
							}
						}
					}
					if !denied {
						t.Errorf("%s %s: no Deny of GetSecretValue on kve/*/keys/*", *tp.stack.StackName(), fn)
					}
				}
			}
		})
	}
}

func TestMailPermissions(t *testing.T) {
	t.Run("no sender, no SES", func(t *testing.T) {
		tp := synth(t, nil)[0]
		for policy, stmts := range tp.allStatements() {
			for _, s := range stmts {
				if touches(s.Actions, "ses:") {
					t.Errorf("%s: %v without mailFrom", policy, s.Actions)
				}
			}
		}
	})
	t.Run("send only as the sender", func(t *testing.T) {
		tp := synth(t, withDomain())[0]
		want := statement{
			Effect:  "Allow",
			Actions: []string{"ses:SendEmail"},
			Resources: sorted(
				"arn:aws:ses:eu-west-1:${AWS::AccountId}:identity/kve@example.com",
				"arn:aws:ses:eu-west-1:${AWS::AccountId}:identity/example.com",
			),
			Conditions: `{"StringEquals":{"ses:FromAddress":"kve@example.com"}}`,
		}
		for _, fn := range []string{fnAPI, fnConsole, fnProxy} {
			var got []statement
			for _, s := range tp.statements(t, fn) {
				if touches(s.Actions, "ses:") {
					got = append(got, s)
				}
			}
			wantFn := []statement{want}
			if fn == fnProxy {
				wantFn = nil
			}
			if diff := cmp.Diff(wantFn, got); diff != "" {
				t.Errorf("%s SES statements (-want +got):\n%s", fn, diff)
			}
		}
	})
}

func sorted(s ...string) []string {
	sort.Strings(s)
	return s
}
