package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// newKey creates the region's customer-managed KMS key. One key per region
// encrypts everything kve keeps there: the table (replica), the server and
// key secrets, both topics and the dead-letter queue. A single key costs
// $1 a month; splitting it would not narrow anyone's access, because every
// grant below is already limited to one AWS service by kms:ViaService.
//
// The alias alias/<name> exists in every region, so the primary region can
// name the replica keys of the table and the server secrets without knowing
// their ids.
//
// Removal: RETAIN. Deleting the key makes the retained table, its backups
// and every secret unreadable for good.
func newKey(scope constructs.Construct, s Settings) awskms.Key {
	key := awskms.NewKey(scope, jsii.String("Key"), &awskms.KeyProps{
		Description:       jsii.String("kve " + s.Name + ": table, secrets, topics and dead-letter queue"),
		Alias:             jsii.String(keyAlias(s)),
		EnableKeyRotation: jsii.Bool(true),
		RotationPeriod:    awscdk.Duration_Days(jsii.Number(365)),
		PendingWindow:     awscdk.Duration_Days(jsii.Number(30)),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	// CloudWatch publishes alarms to the encrypted alarm topic, and SNS
	// moves undeliverable alerts into the encrypted dead-letter queue; both
	// act as their service principal, which the default key policy (the
	// account only) does not cover. Neither can reach a kve resource
	// without the topic's or the queue's own policy letting it.
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String("ServicesEncryptForKve"),
		Principals: &[]awsiam.IPrincipal{
			awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil),
			awsiam.NewServicePrincipal(jsii.String("sns.amazonaws.com"), nil),
		},
		Actions:   jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources: jsii.Strings("*"), // in a key policy, "*" is this key
	}), jsii.Bool(false))
	return key
}

func keyAlias(s Settings) string { return "alias/" + s.Name }
