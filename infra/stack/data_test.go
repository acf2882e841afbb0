package stack

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTable(t *testing.T) {
	tp := synth(t, nil)[0]
	tp.count(t, "AWS::DynamoDB::GlobalTable", 1)
	tp.count(t, "AWS::DynamoDB::Table", 0)
	id, p := tp.only(t, "AWS::DynamoDB::GlobalTable", "", nil)
	keyID, _ := tp.only(t, "AWS::KMS::Key", "", nil)

	t.Run("schema is the store's", func(t *testing.T) {
		got := map[string]any{
			"AttributeDefinitions": p["AttributeDefinitions"], "KeySchema": p["KeySchema"],
			"TimeToLiveSpecification": p["TimeToLiveSpecification"], "BillingMode": p["BillingMode"],
			"GlobalSecondaryIndexes": p["GlobalSecondaryIndexes"], "TableName": p["TableName"],
		}
		want := map[string]any{
			"AttributeDefinitions": []any{
				map[string]any{"AttributeName": "pk", "AttributeType": "S"},
				map[string]any{"AttributeName": "sk", "AttributeType": "S"},
			},
			"KeySchema": []any{
				map[string]any{"AttributeName": "pk", "KeyType": "HASH"},
				map[string]any{"AttributeName": "sk", "KeyType": "RANGE"},
			},
			"TimeToLiveSpecification": map[string]any{"AttributeName": "ttl", "Enabled": true},
			"BillingMode":             "PAY_PER_REQUEST",
			"GlobalSecondaryIndexes":  nil,
			"TableName":               "kve",
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("table (-want +got):\n%s", diff)
		}
	})
	t.Run("encrypted with the customer-managed key", func(t *testing.T) {
		if diff := cmp.Diff(map[string]any{"SSEEnabled": true, "SSEType": "KMS"}, p["SSESpecification"]); diff != "" {
			t.Errorf("SSESpecification (-want +got):\n%s", diff)
		}
		replicas := list(p["Replicas"])
		if len(replicas) != 1 {
			t.Fatalf("%d replicas, want 1", len(replicas))
		}
		r := obj(replicas[0])
		if got, want := flat(obj(r["SSESpecification"])["KMSMasterKeyId"]), "${"+keyID+".Arn}"; got != want {
			t.Errorf("replica key = %s, want %s", got, want)
		}
		if got := flat(r["Region"]); got != "${AWS::Region}" {
			t.Errorf("replica region = %s, want the deploy region", got)
		}
	})
	t.Run("point-in-time recovery and deletion protection", func(t *testing.T) {
		r := obj(list(p["Replicas"])[0])
		if diff := cmp.Diff(map[string]any{"PointInTimeRecoveryEnabled": true}, r["PointInTimeRecoverySpecification"]); diff != "" {
			t.Errorf("PITR (-want +got):\n%s", diff)
		}
		if r["DeletionProtectionEnabled"] != true {
			t.Errorf("DeletionProtectionEnabled = %v, want true", r["DeletionProtectionEnabled"])
		}
	})
	t.Run("retained", func(t *testing.T) {
		r := tp.resources("AWS::DynamoDB::GlobalTable")[id]
		if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
			t.Errorf("DeletionPolicy %v, UpdateReplacePolicy %v; want Retain", r["DeletionPolicy"], r["UpdateReplacePolicy"])
		}
	})
	t.Run("no stream in one region", func(t *testing.T) {
		if s, ok := p["StreamSpecification"]; ok {
			t.Errorf("StreamSpecification = %v; no function reads a stream", s)
		}
	})
}

func TestKey(t *testing.T) {
	tp := synth(t, nil)[0]
	tp.count(t, "AWS::KMS::Key", 1)
	id, p := tp.only(t, "AWS::KMS::Key", "", nil)
	if p["EnableKeyRotation"] != true {
		t.Errorf("EnableKeyRotation = %v, want true", p["EnableKeyRotation"])
	}
	if r := tp.resources("AWS::KMS::Key")[id]; r["DeletionPolicy"] != "Retain" {
		t.Errorf("key DeletionPolicy = %v, want Retain", r["DeletionPolicy"])
	}
	tp.has(t, "AWS::KMS::Alias", map[string]any{"AliasName": "alias/kve"})

	// CloudWatch and SNS, which encrypt into kve's alarm topic and
	// dead-letter queue, may use the key to encrypt and decrypt, nothing
	// else.
	var found bool
	for _, st := range list(obj(p["KeyPolicy"])["Statement"]) {
		st := obj(st)
		if st["Sid"] != "ServicesEncryptForKve" {
			continue
		}
		found = true
		got := map[string]any{"services": strs(obj(st["Principal"])["Service"]), "actions": strs(st["Action"])}
		want := map[string]any{
			"services": []string{"cloudwatch.amazonaws.com", "sns.amazonaws.com"},
			"actions":  []string{"kms:Decrypt", "kms:GenerateDataKey*"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("key policy for services (-want +got):\n%s", diff)
		}
	}
	if !found {
		t.Error("key policy has no statement for CloudWatch and SNS")
	}
}
