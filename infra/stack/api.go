package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/jsii-runtime-go"
)

// stageName is the stage of every API; URLs on the default endpoint carry it
// (https://<id>.execute-api.<region>.amazonaws.com/prod/openai/v1/…), the
// custom domains map their root to it.
const stageName = "prod"

// accessLogFormat is one JSON line per request. It holds no header, body or
// query string (those carry tokens: Authorization, x-api-key, ?key=), and
// not the request path either: invite links carry their code in it
// (/invite/<code>, /api/v1/invites/<code>). Only the request id, the client
// IP API Gateway saw, the method, the matched resource (/{proxy+},
// /invite/{proxy+}…; the functions log their own routes), the status and
// timings, and the WAF verdict.
const accessLogFormat = `{"request_id":"$context.requestId","ip":"$context.identity.sourceIp",` +
	`"time":"$context.requestTime","method":"$context.httpMethod","domain":"$context.domainName",` +
	`"resource":"$context.resourcePath","status":"$context.status","protocol":"$context.protocol",` +
	`"response_bytes":"$context.responseLength","latency_ms":"$context.responseLatency",` +
	`"integration_latency_ms":"$context.integration.latency","integration_status":"$context.integration.status",` +
	`"waf":"$context.waf.status","error":"$context.error.responseType"}`

// newRestAPI creates a REST API (routes are added by the caller).
//
//   - REGIONAL endpoint: an edge-optimized endpoint closes a streamed
//     response that is idle for 30 s, which a reasoning model thinking
//     before its first token easily is; regional streams may idle for 5
//     minutes.
//   - Binary media type */*: every body reaches the functions untouched
//     (base64-encoded in the event, isBase64Encoded true), so uploads
//     (audio, images, files) are proxied byte for byte.
//   - Access logs to a log group with the deployment's retention;
//     execution logging off (it could log bodies), detailed per-method
//     metrics off (they cost per metric; the API-level ones are free).
//   - No compression: a compressed streamed response would be buffered.
//
// hosts is the host-form API, reached only through the provider custom
// domains: its default execute-api endpoint is disabled.
func newRestAPI(r *region, id, name string, hosts bool) awsapigateway.RestApi {
	logs := r.logGroup(id + "AccessLogs")
	// Access logs need API Gateway's account-wide CloudWatch role in the
	// region; the main API sets it, with removal RETAIN because other APIs
	// of the account may rely on it after this stack is gone.
	var cloudWatchRoleRemoval awscdk.RemovalPolicy
	if !hosts {
		cloudWatchRoleRemoval = awscdk.RemovalPolicy_RETAIN
	}
	api := awsapigateway.NewRestApi(r.stack, jsii.String(id), &awsapigateway.RestApiProps{
		RestApiName: jsii.String(name),
		Description: jsii.String("kve " + r.s.Name + ": " + name),
		EndpointConfiguration: &awsapigateway.EndpointConfiguration{
			Types: &[]awsapigateway.EndpointType{awsapigateway.EndpointType_REGIONAL},
		},
		BinaryMediaTypes:            jsii.Strings("*/*"),
		DisableExecuteApiEndpoint:   jsii.Bool(hosts),
		CloudWatchRole:              jsii.Bool(!hosts),
		CloudWatchRoleRemovalPolicy: cloudWatchRoleRemoval,
		Deploy:                      jsii.Bool(true),
		DeployOptions: &awsapigateway.StageOptions{
			StageName:            jsii.String(stageName),
			AccessLogDestination: awsapigateway.NewLogGroupLogDestination(logs),
			AccessLogFormat:      awsapigateway.AccessLogFormat_Custom(jsii.String(accessLogFormat)),
			LoggingLevel:         awsapigateway.MethodLoggingLevel_OFF,
			DataTraceEnabled:     jsii.Bool(false),
			MetricsEnabled:       jsii.Bool(false),
			TracingEnabled:       jsii.Bool(false),
		},
	})
	// CDK outputs the stage URL of every RestApi; kve's own outputs say
	// what each URL is for, and the host-form API has no such URL.
	api.Node().TryRemoveChild(jsii.String("Endpoint"))
	return api
}

// streaming is the proxy's integration: Lambda response streaming
// (transfer mode STREAM, invoked through .../response-streaming-invocations)
// with API Gateway's longest timeout for a streamed response, 15 minutes,
// so tokens reach the client as the upstream produces them. One Lambda
// permission per API (not per method) keeps the function's resource policy
// small.
func streaming(f *function) awsapigateway.LambdaIntegration {
	return awsapigateway.NewLambdaIntegration(f.fn, &awsapigateway.LambdaIntegrationOptions{
		ResponseTransferMode:    awsapigateway.ResponseTransferMode_STREAM,
		Timeout:                 awscdk.Duration_Minutes(jsii.Number(15)),
		ScopePermissionToMethod: jsii.Bool(false),
	})
}

// buffered is the api's and console's integration: ordinary buffered
// responses (JSON and HTML pages), API Gateway's default 29 s timeout.
func buffered(f *function) awsapigateway.LambdaIntegration {
	return awsapigateway.NewLambdaIntegration(f.fn, &awsapigateway.LambdaIntegrationOptions{
		ScopePermissionToMethod: jsii.Bool(false),
	})
}

// routeMain routes the main API (path form on the default endpoint, and
// api.<domain> and console.<domain>):
//
//	/api/{proxy+}                 → api
//	/ and the console's pages     → console
//	/{proxy+}                     → proxy, streamed (/openai/v1/…, /healthz)
//
// API Gateway prefers a literal path segment over {proxy+}, so /login
// reaches the console and /openai/... the proxy. Every route takes ANY
// method; CORS preflights reach the proxy, which answers them itself.
func routeMain(api awsapigateway.RestApi, fs functions) {
	proxy, manage, console := streaming(fs.proxy), buffered(fs.api), buffered(fs.console)
	root := api.Root()
	root.AddMethod(jsii.String("ANY"), console, nil)
	root.AddResource(jsii.String("api"), nil).AddProxy(&awsapigateway.ProxyResourceOptions{
		DefaultIntegration: manage, AnyMethod: jsii.Bool(true),
	})
	// The dashboard's pages, and its subtrees (/invite/{proxy+}). Each
	// hides a provider of the same name from the path form, so each must be
	// a name no provider can have (TestRoutes checks).
	for _, page := range []string{"login", "logout", "setup", "account"} {
		root.AddResource(jsii.String(page), nil).AddMethod(jsii.String("ANY"), console, nil)
	}
	for _, tree := range []string{"invite", "static", "o"} {
		root.AddResource(jsii.String(tree), nil).AddProxy(&awsapigateway.ProxyResourceOptions{
			DefaultIntegration: console, AnyMethod: jsii.Bool(true),
		})
	}
	root.AddProxy(&awsapigateway.ProxyResourceOptions{DefaultIntegration: proxy, AnyMethod: jsii.Bool(true)})
}

// routeHosts routes the host-form API: on <provider>.<domain> every path,
// "/" included, is a provider path and goes to the proxy, streamed.
func routeHosts(api awsapigateway.RestApi, fs functions) {
	proxy := streaming(fs.proxy)
	api.Root().AddMethod(jsii.String("ANY"), proxy, nil)
	api.Root().AddProxy(&awsapigateway.ProxyResourceOptions{DefaultIntegration: proxy, AnyMethod: jsii.Bool(true)})
}

// defaultEndpoint returns the base URL of api's stage on its execute-api
// endpoint. It is built from the API id rather than taken from api.Url(),
// which refers to the deployment stage: the functions need this URL in
// their environment, and the stage depends on the functions.
func defaultEndpoint(r *region, api awsapigateway.RestApi) string {
	return "https://" + defaultHost(r, api) + "/" + stageName
}

// defaultHost is api's execute-api host name.
func defaultHost(r *region, api awsapigateway.RestApi) string {
	return *api.RestApiId() + ".execute-api." + *r.stack.Region() + "." + *r.stack.UrlSuffix()
}
