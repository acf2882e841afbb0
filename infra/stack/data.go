package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyvault-edge/kve/shared/store/dynamo"
)

// newTable creates kve's one table in the primary region, with a replica in
// every other region: a DynamoDB global table (TableV2 always synthesizes
// AWS::DynamoDB::GlobalTable, so a single-region deployment can add regions
// later without replacing the table).
//
// The schema is the store's (shared/store/dynamo): partition key pk, sort
// key sk, both strings, TTL attribute ttl, no secondary index.
//
//   - Billing on demand: kve's traffic is bursty and mostly idle; there is no
//     capacity to plan and an idle table costs only its storage.
//   - Point-in-time recovery, deletion protection and removal policy RETAIN
//     in every replica: the table holds every token, member and audit event.
//   - Encrypted with the region's customer-managed key; replicas use the key
//     of their own region, named by alias because it lives in another stack.
//   - Streams: none in one region, since no function consumes them. A table
//     with replicas gets NEW_AND_OLD_IMAGES from TableV2, because global
//     table replication requires it.
//   - Replication is eventually consistent (MultiRegionConsistency EVENTUAL):
//     strong multi-region consistency does not support the transactions the
//     store relies on. See infra/README.md for what that means per region.
func newTable(r *region, key awskms.IKey) awsdynamodb.TableV2 {
	var replicas []*awsdynamodb.ReplicaTableProps
	replicaKeys := map[string]*string{}
	for _, other := range r.s.Regions {
		if other == r.name {
			continue
		}
		replicas = append(replicas, &awsdynamodb.ReplicaTableProps{Region: jsii.String(other)})
		replicaKeys[other] = jsii.String(r.aliasARN(other))
	}
	var replicaKeyARNs *map[string]*string
	if len(replicaKeys) > 0 {
		replicaKeyARNs = &replicaKeys
	}
	encryption := awsdynamodb.TableEncryptionV2_CustomerManagedKey(key, replicaKeyARNs)
	if r.name == "" {
		encryption = nil // set on the resource below
	}
	table := awsdynamodb.NewTableV2(r.stack, jsii.String("Table"), &awsdynamodb.TablePropsV2{
		TableName:           jsii.String(r.s.Name),
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(dynamo.AttrPK), Type: awsdynamodb.AttributeType_STRING},
		SortKey:             &awsdynamodb.Attribute{Name: jsii.String(dynamo.AttrSK), Type: awsdynamodb.AttributeType_STRING},
		TimeToLiveAttribute: jsii.String(dynamo.AttrTTL),
		Billing:             awsdynamodb.Billing_OnDemand(nil),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		DeletionProtection:     jsii.Bool(true),
		Encryption:             encryption,
		MultiRegionConsistency: awsdynamodb.MultiRegionConsistency_EVENTUAL,
		Replicas:               &replicas,
		RemovalPolicy:          awscdk.RemovalPolicy_RETAIN,
	})
	if r.name == "" {
		// TableV2 renders a customer-managed key per replica region and so
		// refuses an environment-agnostic stack, whose region is unknown at
		// synthesis. That stack has exactly one replica, in the region it is
		// deployed to, so the key goes on the resource directly: the same
		// properties TableV2 writes when the region is known.
		cfn := table.Node().DefaultChild().(awsdynamodb.CfnGlobalTable)
		cfn.AddPropertyOverride(jsii.String("SSESpecification"), map[string]any{"SSEEnabled": true, "SSEType": "KMS"})
		cfn.AddPropertyOverride(jsii.String("Replicas.0.SSESpecification"), map[string]any{"KMSMasterKeyId": key.KeyArn()})
	}
	return table
}
