// Package stack defines kve's AWS infrastructure as CDK constructs, one
// file per concern, read top to bottom like the diagram in DESIGN §1:
//
//	key.go          the customer-managed KMS key of a region
//	data.go         the DynamoDB table (a global table across regions)
//	secrets.go      kve's server secrets and the kve/*/keys/* namespace
//	alerts.go       the breach alert topic, its dead-letter queue, the alarm topic
//	functions.go    the proxy, api and console functions and their environment
//	permissions.go  what each function may do, and nothing more
//	api.go          the REST APIs: routes, streaming, access logs
//	domain.go       custom domains, certificates, DNS records, health checks
//	waf.go          the optional WAF rate limit
//	alarms.go       alarms and the dashboard
//
// New builds one stack per region from Settings; cmd infra (infra/main.go)
// is the CDK app that calls it, and the assertion tests here synthesize it.
package stack

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/interfaces/interfacesawscloudwatch"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyvault-edge/kve/shared/kve"
)

// New adds kve's stacks to app and returns them, the primary first.
//
// With no regions setting there is one environment-agnostic stack, which
// deploys to whatever account and region the CLI's credentials name and
// synthesizes with none. With one region it is pinned there. With several,
// each region gets a stack with its own key, functions, APIs, alarms and
// dashboard: <name> in the first region, <name>-<region> in the others.
// The first region's stack also owns what is shared: the global table
// (replicated to the others), the server secrets (replicated), and the
// alert topic. It deploys last (`cdk deploy --all` orders it) because its
// replicas use the other regions' keys.
func New(app constructs.Construct, s Settings) ([]awscdk.Stack, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("kve stack: %w", err)
	}
	if !s.MultiRegion() {
		name := ""
		if len(s.Regions) == 1 {
			name = s.Regions[0]
		}
		st, err := newRegion(app, s, name, s.Name)
		if err != nil {
			return nil, err
		}
		return []awscdk.Stack{st}, nil
	}
	var stacks []awscdk.Stack
	for i, name := range s.Regions {
		// The primary keeps the plain name, so a deployment that grows from
		// one region to several updates its stack (the table gains replicas
		// in place) instead of creating a new one.
		id := s.Name
		if i > 0 {
			id += "-" + name
		}
		st, err := newRegion(app, s, name, id)
		if err != nil {
			return nil, err
		}
		stacks = append(stacks, st)
	}
	for _, other := range stacks[1:] {
		stacks[0].AddStackDependency(other, jsii.String("the table and secret replicas use this region's key"))
	}
	return stacks, nil
}

// region is one regional stack while it is built.
type region struct {
	stack   awscdk.Stack
	s       Settings
	name    string // the AWS region; "" in the environment-agnostic stack
	primary bool
}

// deps is what the functions use, wherever it lives: table, secrets and
// alert topic are the primary region's (or their replicas), the key is the
// region's own.
type deps struct {
	tableName string
	tableARN  string
	keyARN    string
	secrets   serverSecrets
	topic     topicRef
}

func newRegion(app constructs.Construct, s Settings, name, id string) (awscdk.Stack, error) {
	props := &awscdk.StackProps{
		Description: jsii.String("kve (KeyVault Edge) " + s.Name + ": API-key proxy, management API and dashboard"),
	}
	if name != "" {
		props.Env = &awscdk.Environment{Region: jsii.String(name)}
	}
	st := awscdk.NewStack(app, jsii.String(id), props)
	awscdk.Tags_Of(st).Add(jsii.String("kve:deployment"), jsii.String(s.Name), nil)
	r := &region{stack: st, s: s, name: name, primary: name == "" || name == s.Regions[0]}

	key := newKey(st, s)
	d := deps{keyARN: *key.KeyArn()}
	var al *alerts
	if r.primary {
		table := newTable(r, key)
		d.tableName, d.tableARN = *table.TableName(), *table.TableArn()
		secrets, setup := newServerSecrets(r, key)
		d.secrets = secrets
		a, err := newAlerts(r, key)
		if err != nil {
			return nil, fmt.Errorf("kve stack %s: %w", id, err)
		}
		al = &a
		d.topic = ownTopic(r, a, key)
		output(r, "SetupCodeSecretArn", "the one-time setup code: aws secretsmanager get-secret-value --secret-id <this>", *setup.SecretArn())
		output(r, "AlertDeadLetterQueueArn", "dead-letter queue for alert subscriptions (RedrivePolicy)", *a.dlq.QueueArn())
	} else {
		d.tableName = s.Name
		d.tableARN = r.arn("dynamodb", "table", s.Name, awscdk.ArnFormat_SLASH_RESOURCE_NAME)
		d.secrets = replicaSecrets(r)
		d.topic = remoteTopic(r, s.Regions[0])
	}
	alarmTopic := newAlarmTopic(r, key)

	main := newRestAPI(r, "Api", s.Name, false)
	publicURL := defaultEndpoint(r, main)
	if s.Domain != "" {
		publicURL = "https://console." + s.Domain
	}
	fs, err := newFunctions(r, environments(r, d, publicURL))
	if err != nil {
		return nil, fmt.Errorf("kve stack %s: %w", id, err)
	}
	grant(r, fs, d)
	routeMain(main, fs)
	apis := []awsapigateway.RestApi{main}
	if s.Domain != "" {
		hosts := newRestAPI(r, "HostApi", s.Name+"-hosts", true)
		routeHosts(hosts, fs)
		newDomains(r, main, hosts)
		apis = append(apis, hosts)
	}
	if s.WAF {
		newWAF(r, apis...)
	}
	dash := newMonitoring(r, monitoring{fs: fs, apis: apis, tableName: d.tableName, alerts: al, topic: alarmTopic})

	outputs(r, main, publicURL)
	output(r, "DashboardUrl", "CloudWatch dashboard",
		"https://console.aws.amazon.com/cloudwatch/home?region="+*st.Region()+"#dashboards:name="+*dash.DashboardName())
	output(r, "AlertTopicArn", "breach alert topic (SNS) this region publishes to", d.topic.arn)
	output(r, "AlarmTopicArn", "this region's alarm topic (SNS)", *alarmTopic.TopicArn())
	return st, nil
}

// outputs writes the URLs a team needs after deploy: the management API,
// the dashboard page, and the proxy base URL of every builtin provider, in
// path form on the default endpoint and, with a domain, in host form. A
// base URL is what an SDK takes (OPENAI_BASE_URL and the like).
func outputs(r *region, main awsapigateway.RestApi, publicURL string) {
	endpoint := defaultEndpoint(r, main)
	api := endpoint + "/api/v1"
	if r.s.Domain != "" {
		api = "https://api." + r.s.Domain + "/api/v1"
	}
	output(r, "ApiUrl", "management API", api)
	output(r, "ConsoleUrl", "dashboard (console)", publicURL)
	output(r, "ProxyBaseUrl", "path-form proxy base: append /<provider>/…", endpoint)
	for _, name := range providerNames() {
		p, _ := kve.LookupProvider(name)
		output(r, "ProxyUrl"+titleCase(name), name+" base URL, path form", endpoint+"/"+name+p.BasePath)
		if r.s.Domain != "" {
			output(r, "ProxyHostUrl"+titleCase(name), name+" base URL, host form", "https://"+name+"."+r.s.Domain+p.BasePath)
		}
	}
}

func output(r *region, id, description, value string) {
	awscdk.NewCfnOutput(r.stack, jsii.String(id), &awscdk.CfnOutputProps{
		Description: jsii.String(description),
		Value:       jsii.String(value),
	})
}

// arn formats an ARN in the stack's account and region.
func (r *region) arn(service, resource, name string, format awscdk.ArnFormat) string {
	return r.arnIn(*r.stack.Region(), service, resource, name, format)
}

// arnIn formats an ARN in the stack's account and the given region.
func (r *region) arnIn(region, service, resource, name string, format awscdk.ArnFormat) string {
	c := &awscdk.ArnComponents{
		Service:   jsii.String(service),
		Resource:  jsii.String(resource),
		Region:    jsii.String(region),
		ArnFormat: format,
	}
	if name != "" {
		c.ResourceName = jsii.String(name)
	}
	return *r.stack.FormatArn(c)
}

// aliasARN is the ARN of kve's key alias in another region.
func (r *region) aliasARN(region string) string {
	return r.arnIn(region, "kms", keyAlias(r.s), "", awscdk.ArnFormat_NO_RESOURCE_NAME)
}

// providerNames lists the builtin providers in a stable order, so the
// template does not change between syntheses.
func providerNames() []string { return slices.Sorted(slices.Values(kve.BuiltinProviders())) }

// titleCase turns a name like azure-openai into AzureOpenai, for construct
// and output ids.
func titleCase(name string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(name, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func alarmRefs(alarms []awscloudwatch.IAlarm) *[]interfacesawscloudwatch.IAlarmRef {
	refs := make([]interfacesawscloudwatch.IAlarmRef, len(alarms))
	for i, a := range alarms {
		refs[i] = a
	}
	return &refs
}
