package stack

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/stackenv"
)

func TestTwoRegions(t *testing.T) {
	stacks := synth(t, twoRegions())
	if len(stacks) != 2 {
		t.Fatalf("%d stacks, want 2", len(stacks))
	}
	primary, secondary := stacks[0], stacks[1]
	for _, tt := range []struct {
		tp           *template
		name, region string
	}{{primary, "kve", "us-east-1"}, {secondary, "kve-eu-west-1", "eu-west-1"}} {
		if got := *tt.tp.stack.StackName(); got != tt.name {
			t.Errorf("stack %s, want %s", got, tt.name)
		}
		if got := *tt.tp.stack.Region(); got != tt.region {
			t.Errorf("stack %s in %s, want %s", tt.name, got, tt.region)
		}
		// Each region has its own key, functions, API, alarms and dashboard.
		tt.tp.count(t, "AWS::KMS::Key", 1)
		tt.tp.count(t, "AWS::Lambda::Function", map[bool]int{true: 4, false: 3}[tt.tp == primary])
		tt.tp.count(t, "AWS::CloudWatch::Dashboard", 1)
		tt.tp.count(t, "AWS::WAFv2::WebACL", 1)
		tt.tp.has(t, "AWS::ApiGateway::RestApi", map[string]any{"Name": "kve"})
	}
	t.Run("the primary deploys after the region whose key its replicas use", func(t *testing.T) {
		deps := *primary.stack.Dependencies()
		if len(deps) != 1 || *deps[0].StackName() != "kve-eu-west-1" {
			t.Errorf("primary depends on %d stacks, want kve-eu-west-1", len(deps))
		}
	})

	t.Run("global table with a replica per region", func(t *testing.T) {
		secondary.count(t, "AWS::DynamoDB::GlobalTable", 0)
		_, p := primary.only(t, "AWS::DynamoDB::GlobalTable", "", nil)
		primaryKey, _ := primary.only(t, "AWS::KMS::Key", "", nil)
		got := map[string]any{}
		for _, r := range list(p["Replicas"]) {
			r := obj(r)
			got[flat(r["Region"])] = map[string]any{
				"key": flat(obj(r["SSESpecification"])["KMSMasterKeyId"]), "pitr": r["PointInTimeRecoverySpecification"],
				"deletionProtection": r["DeletionProtectionEnabled"],
			}
		}
		pitr := map[string]any{"PointInTimeRecoveryEnabled": true}
		want := map[string]any{
			"us-east-1": map[string]any{"key": "${" + primaryKey + ".Arn}", "pitr": pitr, "deletionProtection": true},
			// Each replica is encrypted with its own region's key, by alias.
			"eu-west-1": map[string]any{"key": "arn:aws:kms:eu-west-1:${AWS::AccountId}:alias/kve", "pitr": pitr, "deletionProtection": true},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("replicas (-want +got):\n%s", diff)
		}
		// Global table replication needs the stream; nothing else reads it.
		if diff := cmp.Diff(map[string]any{"StreamViewType": "NEW_AND_OLD_IMAGES"}, p["StreamSpecification"]); diff != "" {
			t.Errorf("stream (-want +got):\n%s", diff)
		}
		if p["MultiRegionConsistency"] != "EVENTUAL" {
			t.Errorf("MultiRegionConsistency = %v; strong consistency has no transactions", p["MultiRegionConsistency"])
		}
	})
	t.Run("server secrets replicated, alert topic only in the primary", func(t *testing.T) {
		secondary.count(t, "AWS::SecretsManager::Secret", 0)
		for _, s := range primary.resources("AWS::SecretsManager::Secret") {
			got := flatten(obj(s["Properties"])["ReplicaRegions"])
			want := []any{map[string]any{"Region": "eu-west-1", "KmsKeyId": "arn:aws:kms:eu-west-1:${AWS::AccountId}:alias/kve"}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%v replicas (-want +got):\n%s", obj(s["Properties"])["Name"], diff)
			}
		}
		primary.has(t, "AWS::SNS::Topic", map[string]any{"TopicName": "kve-alerts"})
		secondary.count(t, "AWS::SNS::Topic", 1) // its alarm topic
		secondary.has(t, "AWS::SNS::Topic", map[string]any{"DisplayName": "kve alarms"})
	})
	t.Run("the other region uses the replicas and the primary's topic", func(t *testing.T) {
		vars := obj(obj(secondary.function(t, fnAPI)["Environment"])["Variables"])
		got := map[string]string{}
		for _, v := range []string{stackenv.EnvTable, stackenv.EnvPepperSecret, stackenv.EnvSealSecret, stackenv.EnvAlertTopic, stackenv.EnvPublicURL} {
			got[v] = flat(vars[v])
		}
		want := map[string]string{
			stackenv.EnvTable:        "kve",
			stackenv.EnvPepperSecret: "arn:aws:secretsmanager:eu-west-1:${AWS::AccountId}:secret:kve/system/pepper",
			stackenv.EnvSealSecret:   "arn:aws:secretsmanager:eu-west-1:${AWS::AccountId}:secret:kve/system/seal",
			stackenv.EnvAlertTopic:   "arn:aws:sns:us-east-1:${AWS::AccountId}:kve-alerts",
			stackenv.EnvPublicURL:    "https://console.kve.example.com",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("environment (-want +got):\n%s", diff)
		}
		keyID, _ := secondary.only(t, "AWS::KMS::Key", "", nil)
		wantStatements := withoutLogs([]statement{
			{Effect: "Allow", Actions: []string{"dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"},
				Resources: []string{"arn:aws:dynamodb:eu-west-1:${AWS::AccountId}:table/kve"}},
			{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey*"},
				Resources: []string{"${" + keyID + ".Arn}"}, Conditions: `{"StringEquals":{"kms:ViaService":"dynamodb.eu-west-1.amazonaws.com"}}`},
			{Effect: "Allow", Actions: []string{"secretsmanager:GetSecretValue"}, Resources: sorted(
				"arn:aws:secretsmanager:eu-west-1:${AWS::AccountId}:secret:kve/*/keys/*",
				"arn:aws:secretsmanager:eu-west-1:${AWS::AccountId}:secret:kve/system/pepper-??????")},
			{Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{"${" + keyID + ".Arn}"},
				Conditions: `{"StringEquals":{"kms:ViaService":"secretsmanager.eu-west-1.amazonaws.com"}}`},
			{Effect: "Allow", Actions: []string{"sns:Publish"}, Resources: []string{"arn:aws:sns:us-east-1:${AWS::AccountId}:kve-alerts"}},
			// The topic's key lives in the primary region: any key there
			// that carries kve's alias, used through SNS there.
			{Effect: "Allow", Actions: []string{"kms:Decrypt", "kms:GenerateDataKey*"}, Resources: []string{"arn:aws:kms:us-east-1:${AWS::AccountId}:key/*"},
				Conditions: `{"ForAnyValue:StringEquals":{"kms:ResourceAliases":"alias/kve"},"StringEquals":{"kms:ViaService":"sns.us-east-1.amazonaws.com"}}`},
		})
		if diff := cmp.Diff(wantStatements, withoutLogs(secondary.statements(t, fnProxy))); diff != "" {
			t.Errorf("proxy policy in eu-west-1 (-want +got):\n%s", diff)
		}
	})
	t.Run("latency records with health checks for the providers", func(t *testing.T) {
		for _, tp := range stacks {
			region := *tp.stack.Region()
			hcID, hc := tp.only(t, "AWS::Route53::HealthCheck", "", nil)
			apiID, _ := tp.only(t, "AWS::ApiGateway::RestApi", "Name", "kve")
			cfg := obj(hc["HealthCheckConfig"])
			gotCheck := map[string]any{"type": cfg["Type"], "fqdn": flat(cfg["FullyQualifiedDomainName"]), "path": cfg["ResourcePath"], "port": cfg["Port"]}
			wantCheck := map[string]any{"type": "HTTPS", "fqdn": "${" + apiID + "}.execute-api." + region + ".${AWS::URLSuffix}", "path": "/prod/healthz", "port": 443.0}
			if diff := cmp.Diff(wantCheck, gotCheck); diff != "" {
				t.Errorf("%s health check (-want +got):\n%s", region, diff)
			}
			latency, simple := map[string]bool{}, map[string]bool{}
			for _, r := range tp.resources("AWS::Route53::RecordSet") {
				p := obj(r["Properties"])
				if p["SetIdentifier"] == nil {
					simple[flat(p["Name"])] = true
					continue
				}
				if p["Region"] != region || p["SetIdentifier"] != region || flat(p["HealthCheckId"]) != "${"+hcID+"}" {
					t.Errorf("%s record %v: region %v, set %v, health check %v", region, p["Name"], p["Region"], p["SetIdentifier"], p["HealthCheckId"])
				}
				latency[flat(p["Name"])] = true
			}
			wantLatency := map[string]bool{}
			for _, p := range providerNames() {
				wantLatency[p+".kve.example.com."] = true
			}
			if diff := cmp.Diff(wantLatency, latency); diff != "" {
				t.Errorf("%s latency records (-want +got):\n%s", region, diff)
			}
			// Management stays in the primary region, where its
			// transactions hold.
			wantSimple := map[string]bool{}
			if tp == primary {
				wantSimple = map[string]bool{"api.kve.example.com.": true, "console.kve.example.com.": true}
			}
			if diff := cmp.Diff(wantSimple, simple); diff != "" {
				t.Errorf("%s simple records (-want +got):\n%s", region, diff)
			}
		}
	})
	t.Run("alert alarms only where the topic is", func(t *testing.T) {
		for _, a := range secondary.resources("AWS::CloudWatch::Alarm") {
			if ns := obj(a["Properties"])["Namespace"]; ns == "AWS/SNS" || ns == "AWS/SQS" {
				t.Errorf("alarm on %v in the region without the alert topic", ns)
			}
		}
	})
}
