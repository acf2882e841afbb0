package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awswafv2"
	"github.com/aws/jsii-runtime-go"
)

// newWAF puts a regional WAF web ACL in front of the region's APIs (when
// the waf setting is on). Its one rule blocks a client IP that sends more
// than WAFRateLimit requests in 5 minutes: a flood guard in front of the
// functions, so a single source cannot run up Lambda and API Gateway cost
// or exhaust concurrency. Per-token limits stay in the proxy, which knows
// the token.
//
// No AWS managed rule groups: the common rule set blocks request bodies
// over 8 KB and many prompt texts, which would break ordinary LLM calls.
// Sampled requests and WAF logging are off because both would keep request
// headers, and headers carry kve tokens. Cost: $5 a month for the web ACL,
// $1 for the rule, $0.60 per million requests inspected.
func newWAF(r *region, apis ...awsapigateway.RestApi) awswafv2.CfnWebACL {
	visibility := func(metric string) *awswafv2.CfnWebACL_VisibilityConfigProperty {
		return &awswafv2.CfnWebACL_VisibilityConfigProperty{
			CloudWatchMetricsEnabled: jsii.Bool(true),
			MetricName:               jsii.String(metric),
			SampledRequestsEnabled:   jsii.Bool(false),
		}
	}
	acl := awswafv2.NewCfnWebACL(r.stack, jsii.String("Waf"), &awswafv2.CfnWebACLProps{
		Scope:            jsii.String("REGIONAL"),
		Description:      jsii.String("kve " + r.s.Name + ": per-IP rate limit"),
		DefaultAction:    &awswafv2.CfnWebACL_DefaultActionProperty{Allow: &awswafv2.CfnWebACL_AllowActionProperty{}},
		VisibilityConfig: visibility(r.s.Name + "-waf"),
		Rules: &[]any{
			&awswafv2.CfnWebACL_RuleProperty{
				Name:     jsii.String("rate-per-ip"),
				Priority: jsii.Number(0),
				Action:   &awswafv2.CfnWebACL_RuleActionProperty{Block: &awswafv2.CfnWebACL_BlockActionProperty{}},
				Statement: &awswafv2.CfnWebACL_StatementProperty{
					RateBasedStatement: &awswafv2.CfnWebACL_RateBasedStatementProperty{
						Limit:               jsii.Number(float64(r.s.WAFRateLimit)),
						AggregateKeyType:    jsii.String("IP"),
						EvaluationWindowSec: jsii.Number(300),
					},
				},
				VisibilityConfig: visibility(r.s.Name + "-rate-per-ip"),
			},
		},
	})
	for _, api := range apis {
		awswafv2.NewCfnWebACLAssociation(r.stack, jsii.String(*api.Node().Id()+"Waf"), &awswafv2.CfnWebACLAssociationProps{
			ResourceArn: api.DeploymentStage().StageArn(),
			WebAclArn:   acl.AttrArn(),
		})
	}
	return acl
}
