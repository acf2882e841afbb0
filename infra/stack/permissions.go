package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// grant gives each function exactly what it uses. No statement names "*"
// as a resource: tables, secrets, keys and topics are named by ARN, and
// the only wildcards are the key-secret namespace kve/*/keys/*, the random
// suffix Secrets Manager appends to a name, and the key id of another
// region's key (narrowed by its alias): the primary's where another region
// publishes, the other regions' where key secrets are replicated.
func grant(r *region, fs functions, d deps) {
	table := []string{d.tableARN}
	keySecrets := r.arn("secretsmanager", "secret", keySecretPattern, awscdk.ArnFormat_COLON_RESOURCE_NAME)

	// proxy: read tokens and write usage; read real keys and the pepper;
	// publish breach alerts. It cannot read the sealing key or the setup
	// code, and cannot write or delete any secret.
	p := fs.proxy.role
	// The proxy reads the token by HMAC (Query, consistent) and, as a
	// response completes, writes in one transaction the usage record
	// (Put), today's spend counter and the token's last use (Update, ADD);
	// breach alerts are deduplicated with a conditional Put, and a budget
	// reservation may check an item without writing it. DynamoDB has no
	// IAM action for TransactWriteItems: each item in a transaction is
	// authorized as the PutItem, UpdateItem, DeleteItem or
	// ConditionCheckItem it performs. The proxy never deletes, never scans.
	allow(p, "ProxyTable", []string{
		"dynamodb:GetItem", "dynamodb:Query",
		"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:ConditionCheckItem",
	}, table, nil)
	allow(p, "TableKey", []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"},
		[]string{d.keyARN}, viaService(r, "dynamodb"))
	allow(p, "ReadKeysAndPepper", []string{"secretsmanager:GetSecretValue"},
		[]string{keySecrets, d.secrets.pepper.policy}, nil)
	allow(p, "SecretsKey", []string{"kms:Decrypt"}, []string{d.keyARN}, viaService(r, "secretsmanager"))
	publish(p, d.topic, []string{"sns:Publish"})

	// api and console: manage everything in the table and the key
	// namespace, read the server secrets, manage alert subscriptions, send
	// invite mail. They can never read a real key: they may create, replace
	// and delete key secrets but not read them, and an explicit Deny keeps
	// it so even if a broader grant is added to their roles later.
	for _, f := range []*function{fs.api, fs.console} {
		role := f.role
		// Everything the store does, in transactions with the audit event;
		// deletes remove members, keys and sessions. No Scan.
		allow(role, "ManageTable", []string{
			"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
			"dynamodb:DeleteItem", "dynamodb:ConditionCheckItem",
		}, table, nil)
		allow(role, "TableKey", []string{"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"},
			[]string{d.keyARN}, viaService(r, "dynamodb"))
		// A new key secret must be encrypted with kve's key: CreateSecret
		// is allowed only when the request names it.
		allow(role, "CreateKeySecrets", []string{"secretsmanager:CreateSecret"}, []string{keySecrets},
			map[string]any{"StringEquals": map[string]any{"secretsmanager:KmsKeyArn": d.keyARN}})
		allow(role, "ManageKeySecrets", []string{
			"secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret",
			"secretsmanager:DescribeSecret", "secretsmanager:TagResource",
		}, []string{keySecrets}, nil)
		if r.s.MultiRegion() {
			replicateKeySecrets(r, role, keySecrets)
		}
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("NeverReadKeys"),
			Effect:    awsiam.Effect_DENY,
			Actions:   jsii.Strings("secretsmanager:GetSecretValue"),
			Resources: jsii.Strings(keySecrets),
		}))
		allow(role, "ReadServerSecrets", []string{"secretsmanager:GetSecretValue"},
			[]string{d.secrets.pepper.policy, d.secrets.seal.policy, d.secrets.setup.policy}, nil)
		allow(role, "SecretsKey", []string{"kms:Decrypt", "kms:GenerateDataKey"}, []string{d.keyARN},
			viaService(r, "secretsmanager"))
		publish(role, d.topic, []string{
			"sns:Publish", "sns:Subscribe", "sns:Unsubscribe", "sns:ListSubscriptionsByTopic",
			"sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes",
		})
		if r.s.MailFrom != "" {
			sendMail(r, role)
		}
	}
}

// replicateKeySecrets lets role keep a replica of every key secret in each
// other region (shared/secrets.Manager): create a secret with
// AddReplicaRegions (authorized as CreateSecret plus
// ReplicateSecretToRegions) and add a missing replica on rotation, only to
// the deployment's other regions; remove the replicas before a delete,
// since a primary with replicas cannot be deleted.
//
// Replication runs as the caller (a forward access session), so the role
// also needs what Secrets Manager does with the keys for it: kms:Decrypt on
// the primary's key, which SecretsKey already grants, and kms:Encrypt and
// kms:GenerateDataKey on each replica's key. Those keys belong to the other
// regions' stacks, so they are named as any key there carrying kve's alias
// (the alias the replicas are created under). AWS documents that the
// caller needs these permissions but not from which region's Secrets
// Manager the KMS calls come, so kms:ViaService admits Secrets Manager in
// the deployment's regions, and no other service.
func replicateKeySecrets(r *region, role awsiam.Role, keySecrets string) {
	others := otherRegions(r)
	allow(role, "ReplicateKeySecrets", []string{"secretsmanager:ReplicateSecretToRegions"}, []string{keySecrets},
		map[string]any{"ForAllValues:StringEquals": map[string]any{"secretsmanager:AddReplicaRegions": others}})
	allow(role, "UnreplicateKeySecrets", []string{"secretsmanager:RemoveRegionsFromReplication"}, []string{keySecrets}, nil)
	var keys, via []string
	for _, other := range others {
		keys = append(keys, r.arnIn(other, "kms", "key", "*", awscdk.ArnFormat_SLASH_RESOURCE_NAME))
	}
	for _, region := range r.s.Regions {
		via = append(via, "secretsmanager."+region+".amazonaws.com")
	}
	allow(role, "ReplicaSecretsKeys", []string{"kms:Encrypt", "kms:GenerateDataKey"}, keys, map[string]any{
		"ForAnyValue:StringEquals": map[string]any{"kms:ResourceAliases": keyAlias(r.s)},
		"StringEquals":             map[string]any{"kms:ViaService": via},
	})
}

// publish lets role act on the alert topic, with the use of its key that
// publishing to an encrypted topic needs.
func publish(role awsiam.Role, t topicRef, actions []string) {
	allow(role, "AlertTopic", actions, []string{t.arn}, nil)
	cond := map[string]any{"StringEquals": map[string]any{"kms:ViaService": "sns." + t.region + ".amazonaws.com"}}
	for k, v := range t.keyConditions {
		cond[k] = v
	}
	allow(role, "AlertTopicKey", []string{"kms:Decrypt", "kms:GenerateDataKey*"}, []string{t.keyPolicy}, cond)
}

// sendMail lets role send through SES only as MailFrom: from its address
// identity or its domain's identity, whichever the team verified.
func sendMail(r *region, role awsiam.Role) {
	domain := r.s.MailFrom[strings.LastIndexByte(r.s.MailFrom, '@')+1:]
	allow(role, "SendInviteMail", []string{"ses:SendEmail"}, []string{
		r.arn("ses", "identity", r.s.MailFrom, awscdk.ArnFormat_SLASH_RESOURCE_NAME),
		r.arn("ses", "identity", domain, awscdk.ArnFormat_SLASH_RESOURCE_NAME),
	}, map[string]any{"StringEquals": map[string]any{"ses:FromAddress": r.s.MailFrom}})
}

// viaService limits a KMS grant to use by one AWS service of the stack's
// region on the role's behalf.
func viaService(r *region, service string) map[string]any {
	return map[string]any{"StringEquals": map[string]any{"kms:ViaService": service + "." + *r.stack.Region() + ".amazonaws.com"}}
}

// allow adds an Allow statement to role's policy.
func allow(role awsiam.Role, sid string, actions, resources []string, conditions map[string]any) {
	props := &awsiam.PolicyStatementProps{
		Sid:       jsii.String(sid),
		Actions:   jsii.Strings(actions...),
		Resources: jsii.Strings(resources...),
	}
	if conditions != nil {
		props.Conditions = &conditions
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(props))
}
