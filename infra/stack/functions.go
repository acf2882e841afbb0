package stack

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyvault-edge/kve/shared/stackenv"
)

// Function names, as shared/stackenv.Required and `make build` spell them.
const (
	fnProxy   = "proxy"
	fnAPI     = "api"
	fnConsole = "console"
)

// function is one of kve's three Lambda functions with its own role.
type function struct {
	name string
	fn   awslambda.Function
	role awsiam.Role
}

// functions are the region's three functions.
type functions struct {
	proxy, api, console *function
}

func (f functions) all() []*function { return []*function{f.proxy, f.api, f.console} }

// sizing is a function's memory and timeout, and why.
type sizing struct {
	memoryMB float64
	timeout  awscdk.Duration
}

// sizingFor returns the memory and timeout of each function.
//
//   - proxy: 512 MB, 15 minutes. Lambda bills GB-seconds for the whole
//     stream, and a streamed completion spends most of its time waiting for
//     upstream tokens, so memory is kept modest; 512 MB still gives about a
//     third of a vCPU, enough for TLS handshakes to upstreams, the token
//     HMAC and the SSE usage parser without adding to time to first byte,
//     and a fast cold start for a 10 MB Go binary. 15 minutes is both
//     Lambda's maximum and API Gateway's limit for a streamed response:
//     long reasoning generations must not be cut by the function first.
//   - api and console: 1024 MB, 20 seconds. Password checks run argon2id
//     (19 MiB, 2 passes) on one core; at 1024 MB (about 0.6 vCPU) one
//     takes ~125 ms instead of ~250 ms at 512 MB, and management traffic is
//     too small for the extra memory to cost anything noticeable. 20 s is
//     far above any management request (a few DynamoDB and Secrets Manager
//     calls) and below API Gateway's 29 s for buffered responses, so a
//     stuck call ends as a Lambda timeout in the function's own metrics
//     rather than as an anonymous gateway 504.
func sizingFor(name string) sizing {
	if name == fnProxy {
		return sizing{memoryMB: 512, timeout: awscdk.Duration_Minutes(jsii.Number(15))}
	}
	return sizing{memoryMB: 1024, timeout: awscdk.Duration_Seconds(jsii.Number(20))}
}

// newFunctions creates the three functions with their environment. Each
// environment is checked with stackenv.Load, the very function the Lambda
// handlers call at start, so a setting they would refuse stops synthesis
// instead of a deployed function.
//
// Common to all three: runtime provided.al2023 on arm64 (Graviton: about
// 20 % cheaper per GB-second than x86 and as fast for this code), handler
// "bootstrap", code from <AssetDir>/<name> as `make build` writes it; no
// VPC (the proxy must reach public upstreams and AWS APIs directly; a VPC
// would need NAT gateways at ~$33 a month each for nothing); X-Ray off
// (traces would cost per request and add a segment to every streamed
// response; the access logs and metrics carry the request id and latency);
// no reserved concurrency (it would cap the proxy and take from the
// account's pool); JSON log format, so Lambda's own START/REPORT lines are
// queryable next to the functions' slog JSON.
func newFunctions(r *region, env map[string]map[string]string) (functions, error) {
	var fs functions
	for _, name := range []string{fnProxy, fnAPI, fnConsole} {
		vars := env[name]
		if _, err := stackenv.Load(name, func(k string) string { return vars[k] }); err != nil {
			return functions{}, fmt.Errorf("environment of the %s function: %w", name, err)
		}
		code := filepath.Join(r.s.AssetDir, name)
		if _, err := os.Stat(filepath.Join(code, "bootstrap")); err != nil {
			return functions{}, fmt.Errorf("code of the %s function: %w (run `make build`)", name, err)
		}
		f := newFunction(r, name, code, vars)
		switch name {
		case fnProxy:
			fs.proxy = f
		case fnAPI:
			fs.api = f
		case fnConsole:
			fs.console = f
		}
	}
	return fs, nil
}

func newFunction(r *region, name, code string, vars map[string]string) *function {
	id := titleCase(name)
	role := awsiam.NewRole(r.stack, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("kve " + name + " function"),
	})
	// Instead of AWSLambdaBasicExecutionRole (logs:* on every log group),
	// the role may write to its own log group only.
	logs := r.logGroup(id + "Logs")
	logs.GrantWrite(role)

	env := map[string]*string{}
	for k, v := range vars {
		env[k] = jsii.String(v)
	}
	size := sizingFor(name)
	fn := awslambda.NewFunction(r.stack, jsii.String(id+"Function"), &awslambda.FunctionProps{
		Description:   jsii.String("kve " + name),
		Runtime:       awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:  awslambda.Architecture_ARM_64(),
		Handler:       jsii.String("bootstrap"),
		Code:          awslambda.Code_FromAsset(jsii.String(code), nil),
		MemorySize:    jsii.Number(size.memoryMB),
		Timeout:       size.timeout,
		Role:          role,
		LogGroup:      logs,
		LoggingFormat: awslambda.LoggingFormat_JSON,
		Tracing:       awslambda.Tracing_DISABLED,
		Environment:   &env,
	})
	return &function{name: name, fn: fn, role: role}
}

// environments returns each function's environment: every variable
// stackenv.Required names for it, and the optional ones that are configured.
func environments(r *region, d deps, publicURL string) map[string]map[string]string {
	optional := map[string]string{
		stackenv.EnvDomain:       r.s.Domain,
		stackenv.EnvAllowPrivate: strings.Join(r.s.AllowPrivateUpstreams, ","),
		stackenv.EnvKeyCacheTTL:  r.s.KeyCacheTTL,
		stackenv.EnvMaxBodyBytes: r.s.MaxBodyBytes,
		stackenv.EnvLogLevel:     r.s.LogLevel,
	}
	proxy := map[string]string{
		stackenv.EnvTable:        d.tableName,
		stackenv.EnvPepperSecret: d.secrets.pepper.arn,
		stackenv.EnvAlertTopic:   d.topic.arn,
		stackenv.EnvPublicURL:    publicURL, // breach alerts link to the dashboard
	}
	manage := map[string]string{
		stackenv.EnvTable:        d.tableName,
		stackenv.EnvPepperSecret: d.secrets.pepper.arn,
		stackenv.EnvSealSecret:   d.secrets.seal.arn,
		stackenv.EnvSetupSecret:  d.secrets.setup.arn,
		stackenv.EnvKMSKey:       d.keyARN,
		stackenv.EnvAlertTopic:   d.topic.arn,
		stackenv.EnvPublicURL:    publicURL,
		stackenv.EnvMailFrom:     r.s.MailFrom,
		stackenv.EnvAlertDLQ:     d.topic.dlq, // RedrivePolicy of the subscriptions the api makes
		// The secret-scanning endpoint is an api route (/api/v1/secret-scanning/github).
		stackenv.EnvSecretScanningKeys: r.s.SecretScanningKeys,
		stackenv.EnvLeakSuspendEnvs:    r.s.LeakSuspendEnvs,
	}
	if r.s.MultiRegion() {
		// The management functions create key secrets; the proxy only reads
		// its region's copy.
		manage[stackenv.EnvReplicaRegions] = strings.Join(otherRegions(r), ",")
		manage[stackenv.EnvReplicaKMSKey] = keyAlias(r.s)
	}
	out := map[string]map[string]string{fnProxy: proxy, fnAPI: manage, fnConsole: maps.Clone(manage)}
	for _, vars := range out {
		for k, v := range optional {
			vars[k] = v
		}
		for k, v := range vars {
			if v == "" {
				delete(vars, k) // unset, not empty: stackenv.Load treats both alike
			}
		}
	}
	return out
}
