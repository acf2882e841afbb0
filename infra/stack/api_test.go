package stack

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/kve"
)

// route is where one method of an API goes.
type route struct {
	Function string
	Stream   bool // transfer mode STREAM through response-streaming-invocations
	Timeout  float64
}

// routes returns the methods of the REST API named apiName, by "METHOD
// /path", with the function each integrates with.
func (tp *template) routes(t *testing.T, apiName string) map[string]route {
	t.Helper()
	apiID, _ := tp.only(t, "AWS::ApiGateway::RestApi", "Name", apiName)
	root := "${" + apiID + ".RootResourceId}"
	parent, part := map[string]string{}, map[string]string{}
	for id, r := range tp.resources("AWS::ApiGateway::Resource") {
		p := obj(r["Properties"])
		if flat(p["RestApiId"]) == "${"+apiID+"}" {
			parent["${"+id+"}"], part["${"+id+"}"] = flat(p["ParentId"]), flat(p["PathPart"])
		}
	}
	var path func(ref string) string
	path = func(ref string) string {
		if ref == root {
			return ""
		}
		return path(parent[ref]) + "/" + part[ref]
	}
	functions := map[string]string{}
	for id, f := range tp.resources("AWS::Lambda::Function") {
		functions["${"+id+".Arn}"] = strings.TrimPrefix(flat(obj(f["Properties"])["Description"]), "kve ")
	}
	out := map[string]route{}
	for _, m := range tp.resources("AWS::ApiGateway::Method") {
		p := obj(m["Properties"])
		if flat(p["RestApiId"]) != "${"+apiID+"}" {
			continue
		}
		in := obj(p["Integration"])
		uri := flat(in["Uri"])
		fn := "?"
		for arn, name := range functions {
			if strings.Contains(uri, "/functions/"+arn+"/") {
				fn = name
			}
		}
		stream := in["ResponseTransferMode"] == "STREAM"
		// Streaming needs Lambda's InvokeWithResponseStream API.
		streamURI := strings.Contains(uri, ":lambda:path/2021-11-15/functions/") && strings.HasSuffix(uri, "/response-streaming-invocations")
		if stream != streamURI {
			t.Errorf("%s %s: transfer mode %v with integration URI %s", p["HttpMethod"], path(flat(p["ResourceId"])), in["ResponseTransferMode"], uri)
		}
		timeout, _ := in["TimeoutInMillis"].(float64)
		key := flat(p["HttpMethod"]) + " " + path(flat(p["ResourceId"]))
		if strings.HasSuffix(key, " ") {
			key += "/"
		}
		out[key] = route{Function: fn, Stream: stream, Timeout: timeout}
	}
	return out
}

func TestRoutes(t *testing.T) {
	proxy := route{Function: fnProxy, Stream: true, Timeout: 900000}
	console := route{Function: fnConsole}
	t.Run("main API", func(t *testing.T) {
		tp := synth(t, nil)[0]
		want := map[string]route{
			"ANY /":                console,
			"ANY /api/{proxy+}":    {Function: fnAPI},
			"ANY /login":           console,
			"ANY /logout":          console,
			"ANY /setup":           console,
			"ANY /account":         console,
			"ANY /invite/{proxy+}": console,
			"ANY /static/{proxy+}": console,
			"ANY /o/{proxy+}":      console,
			"ANY /{proxy+}":        proxy,
		}
		if diff := cmp.Diff(want, tp.routes(t, "kve")); diff != "" {
			t.Errorf("routes (-want +got):\n%s", diff)
		}
		tp.count(t, "AWS::ApiGateway::RestApi", 1) // no host-form API without a domain

		// A literal route hides the provider of the same name from the path
		// form, so it must be a name no provider can have.
		for key := range want {
			segment := strings.Split(strings.TrimPrefix(key, "ANY /"), "/")[0]
			if segment == "" || segment == "{proxy+}" {
				continue
			}
			if kve.ValidProviderName(segment) {
				t.Errorf("route /%s hides a provider named %q", segment, segment)
			}
		}
	})
	t.Run("host-form API sends everything to the proxy", func(t *testing.T) {
		tp := synth(t, withDomain())[0]
		want := map[string]route{"ANY /": proxy, "ANY /{proxy+}": proxy}
		if diff := cmp.Diff(want, tp.routes(t, "kve-hosts")); diff != "" {
			t.Errorf("routes (-want +got):\n%s", diff)
		}
	})
}

func TestRestAPIs(t *testing.T) {
	tp := synth(t, withDomain())[0]
	for _, tt := range []struct {
		name     string
		disabled bool
	}{{"kve", false}, {"kve-hosts", true}} {
		t.Run(tt.name, func(t *testing.T) {
			id, p := tp.only(t, "AWS::ApiGateway::RestApi", "Name", tt.name)
			got := map[string]any{
				"endpoint": p["EndpointConfiguration"], "binary": p["BinaryMediaTypes"],
				"disabled": p["DisableExecuteApiEndpoint"], "compression": p["MinimumCompressionSize"],
			}
			want := map[string]any{
				// Edge-optimized endpoints close a stream idle for 30 s.
				"endpoint": map[string]any{"Types": []any{"REGIONAL"}},
				"binary":   []any{"*/*"}, "disabled": tt.disabled, "compression": nil,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("API (-want +got):\n%s", diff)
			}
			_, stage := tp.only(t, "AWS::ApiGateway::Stage", "RestApiId", map[string]any{"Ref": id})
			checkStage(t, tp, stage)
		})
	}
	t.Run("one Lambda permission per function and API", func(t *testing.T) {
		// proxy on both APIs, api and console on the main one.
		tp.count(t, "AWS::Lambda::Permission", 4)
	})
}

// checkStage checks a stage's logging: access logs in JSON, to a log group
// with the deployment's retention, holding no header, body, query string or
// request path (invite links carry their code in the path); no execution
// logs, no tracing.
func checkStage(t *testing.T, tp *template, stage map[string]any) {
	t.Helper()
	if stage["StageName"] != "prod" || stage["TracingEnabled"] != false {
		t.Errorf("stage %v, tracing %v; want prod, false", stage["StageName"], stage["TracingEnabled"])
	}
	for _, m := range list(stage["MethodSettings"]) {
		if s := obj(m); s["LoggingLevel"] != "OFF" || s["DataTraceEnabled"] != false || s["MetricsEnabled"] != false {
			t.Errorf("method settings %v; want execution logs, data traces and detailed metrics off", s)
		}
	}
	logs := obj(stage["AccessLogSetting"])
	var fields map[string]string
	if err := json.Unmarshal([]byte(flat(logs["Format"])), &fields); err != nil {
		t.Fatalf("access log format is not JSON: %v", err)
	}
	if fields["request_id"] != "$context.requestId" || fields["status"] != "$context.status" {
		t.Errorf("access log format %v lacks the request id or status", fields)
	}
	for name, v := range fields {
		if !strings.HasPrefix(v, "$context.") || strings.Contains(strings.ToLower(v), "header") ||
			strings.Contains(strings.ToLower(v), "querystring") || strings.Contains(v, "$input") ||
			v == "$context.path" {
			t.Errorf("access log field %s = %s may carry a credential", name, v)
		}
	}
	group := flat(logs["DestinationArn"])
	i := strings.LastIndex(group, ":log-group:${")
	if i < 0 {
		t.Fatalf("access logs go to %s, not a log group of this stack", group)
	}
	groupID := strings.TrimSuffix(group[i+len(":log-group:${"):], "}")
	if got := obj(tp.resources("AWS::Logs::LogGroup")[groupID]["Properties"])["RetentionInDays"]; got != 90.0 {
		t.Errorf("access log retention = %v days, want 90", got)
	}
}
