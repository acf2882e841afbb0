package stack

import (
	"encoding/json"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/customresources"
	"github.com/aws/jsii-runtime-go"
)

// topicRef is how a function reaches the breach alert topic, which lives in
// the primary region only: subscriptions (webhooks, email) are data kept in
// one place, and every region's functions publish there.
type topicRef struct {
	arn string
	// keyPolicy is the IAM resource for the topic's KMS key (publishing to
	// an encrypted topic needs kms:GenerateDataKey and kms:Decrypt on it),
	// and keyConditions narrow it: in the primary region the key's own ARN;
	// in another region any key of the primary region that carries kve's
	// alias, since the key id is unknown there.
	keyPolicy     string
	keyConditions map[string]any
	region        string // the topic's region (a token in an agnostic stack)
	// dlq is the dead-letter queue the api names in the subscriptions it
	// makes (KVE_ALERT_DLQ_ARN); set in the primary region, where
	// subscriptions are managed (its name is CloudFormation's, unknown to
	// the other regions).
	dlq string
}

// alerts is the breach alert topic and what surrounds it.
type alerts struct {
	topic awssns.Topic
	dlq   awssqs.Queue
}

// deliveryPolicy returns the alert topic's default delivery policy for HTTP and
// HTTPS subscriptions (webhooks), which the api creates at run time and so
// cannot carry a policy of their own from here.
//
// SNS caps a policy's total retry time at one hour. This one spends it as:
// 2 quick retries 5 s apart, 10 retries backing off exponentially from 5 s
// to 600 s (≈1,090 s in all), then 3 retries 600 s apart: 10 + 1,090 +
// 1,800 ≈ 2,900 s, 16 attempts in about 48 minutes. A receiver down longer
// than that loses the message to the dead-letter queue, where an alarm
// fires (SECURITY G9 asks for 75 hours, which SNS cannot do; see README).
func deliveryPolicy() map[string]any {
	return map[string]any{
		"http": map[string]any{
			"defaultHealthyRetryPolicy": map[string]any{
				"minDelayTarget":     5,
				"maxDelayTarget":     600,
				"numRetries":         15,
				"numNoDelayRetries":  0,
				"numMinDelayRetries": 2,
				"numMaxDelayRetries": 3,
				"backoffFunction":    "exponential",
			},
			// A receiver may ask for a gentler schedule on its own subscription.
			"disableSubscriptionOverrides": false,
			// Alerts are few (one per token, type and 5 minutes); 10 per second
			// protects a receiver from a burst without delaying real alerts.
			"defaultThrottlePolicy": map[string]any{"maxReceivesPerSecond": 10},
			"defaultRequestPolicy":  map[string]any{"headerContentType": "application/json"},
		},
	}
}

// newAlerts creates the breach alert topic in the primary region.
//
//   - Encrypted with the customer-managed key; EnforceSSL denies any
//     publish that is not over TLS.
//   - SignatureVersion 2: messages are signed with SHA256 (version 1 is
//     SHA1); receivers verify with the certificate SNS names.
//   - The delivery policy above, set by an SDK call (SetTopicAttributes)
//     because CloudFormation has no property for a topic's delivery policy.
//   - A dead-letter queue (SQS, encrypted with the same key, 14 days) for
//     messages a subscription gave up on. The stack's own email
//     subscription uses it; subscriptions the api creates should name it
//     in their RedrivePolicy (its ARN is a stack output).
//   - Removal DESTROY for the topic (subscriptions are re-created by the api)
//     and the queue (its messages are alerts already delivered elsewhere or
//     lost with the deployment).
func newAlerts(r *region, key awskms.IKey) (alerts, error) {
	topic := awssns.NewTopic(r.stack, jsii.String("AlertTopic"), &awssns.TopicProps{
		TopicName:        jsii.String(alertTopicName(r.s)),
		DisplayName:      jsii.String("kve alerts"),
		MasterKey:        key,
		SignatureVersion: jsii.String("2"),
		EnforceSSL:       jsii.Bool(true),
	})
	topic.ApplyRemovalPolicy(awscdk.RemovalPolicy_DESTROY)

	policy, err := json.Marshal(deliveryPolicy())
	if err != nil {
		return alerts{}, fmt.Errorf("alert topic delivery policy: %w", err)
	}
	call := &customresources.AwsSdkCall{
		Service: jsii.String("SNS"),
		Action:  jsii.String("setTopicAttributes"),
		Parameters: map[string]any{
			"TopicArn":       topic.TopicArn(),
			"AttributeName":  "DeliveryPolicy",
			"AttributeValue": string(policy),
		},
		PhysicalResourceId: customresources.PhysicalResourceId_Of(jsii.String("alert-topic-delivery-policy")),
	}
	customresources.NewAwsCustomResource(r.stack, jsii.String("AlertTopicDeliveryPolicy"), &customresources.AwsCustomResourceProps{
		OnCreate: call,
		OnUpdate: call,
		Policy: customresources.AwsCustomResourcePolicy_FromSdkCalls(&customresources.SdkCallsPolicyOptions{
			Resources: &[]*string{topic.TopicArn()},
		}),
		InstallLatestAwsSdk: jsii.Bool(false), // no download from npm at deploy time
		LogGroup:            r.logGroup("DeliveryPolicyLogs"),
		RemovalPolicy:       awscdk.RemovalPolicy_DESTROY,
	})

	dlq := awssqs.NewQueue(r.stack, jsii.String("AlertDeadLetterQueue"), &awssqs.QueueProps{
		Encryption:          awssqs.QueueEncryption_KMS,
		EncryptionMasterKey: key,
		RetentionPeriod:     awscdk.Duration_Days(jsii.Number(14)),
		EnforceSSL:          jsii.Bool(true),
		RemovalPolicy:       awscdk.RemovalPolicy_DESTROY,
	})
	// Every subscription of the alert topic may dead-letter here, including
	// the ones the api creates later; nothing else may send.
	dlq.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AlertTopicDeadLetters"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewServicePrincipal(jsii.String("sns.amazonaws.com"), nil)},
		Actions:    jsii.Strings("sqs:SendMessage"),
		Resources:  &[]*string{dlq.QueueArn()},
		Conditions: &map[string]any{"ArnEquals": map[string]any{"aws:SourceArn": topic.TopicArn()}},
	}))

	if r.s.AlertEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(r.s.AlertEmail),
			&awssnssubscriptions.EmailSubscriptionProps{DeadLetterQueue: dlq}))
	}
	return alerts{topic: topic, dlq: dlq}, nil
}

// ownTopic refers to the alert topic from the primary region itself.
func ownTopic(r *region, a alerts, key awskms.IKey) topicRef {
	return topicRef{arn: *a.topic.TopicArn(), keyPolicy: *key.KeyArn(), region: *r.stack.Region(), dlq: *a.dlq.QueueArn()}
}

// remoteTopic refers to the primary region's alert topic from another region.
func remoteTopic(r *region, primary string) topicRef {
	return topicRef{
		arn:       r.arnIn(primary, "sns", alertTopicName(r.s), "", awscdk.ArnFormat_NO_RESOURCE_NAME),
		keyPolicy: r.arnIn(primary, "kms", "key", "*", awscdk.ArnFormat_SLASH_RESOURCE_NAME),
		keyConditions: map[string]any{
			"ForAnyValue:StringEquals": map[string]any{"kms:ResourceAliases": keyAlias(r.s)},
		},
		region: primary,
	}
}

func alertTopicName(s Settings) string { return s.Name + "-alerts" }

// newAlarmTopic creates the region's alarm topic: CloudWatch alarms must
// notify a topic in their own region, so each region has one, and the
// operators' email (AlertEmail) subscribes to each. It is kept apart from
// the alert topic so that the webhooks of organizations never receive the
// operators' alarms. Encrypted with the region's key (the key policy lets
// CloudWatch use it), TLS enforced, removal DESTROY. Its email subscription
// has no dead-letter queue: an alarm that cannot be mailed stays visible in
// the alarm's state and on the dashboard, and a queue nobody reads would
// add nothing.
func newAlarmTopic(r *region, key awskms.IKey) awssns.Topic {
	topic := awssns.NewTopic(r.stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("kve alarms"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	topic.ApplyRemovalPolicy(awscdk.RemovalPolicy_DESTROY)
	if r.s.AlertEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(r.s.AlertEmail), nil))
	}
	return topic
}
