package stack

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hosts are the custom domain names of a deployment on kve.example.com.
func hosts() []string {
	var out []string
	for _, p := range providerNames() {
		out = append(out, p+".kve.example.com")
	}
	return append(out, "api.kve.example.com", "console.kve.example.com")
}

// domains returns, per custom domain name, the REST API its root maps to.
func (tp *template) domains(t *testing.T) map[string]string {
	t.Helper()
	apiName := map[string]string{}
	for id, a := range tp.resources("AWS::ApiGateway::RestApi") {
		apiName["${"+id+"}"] = flat(obj(a["Properties"])["Name"])
	}
	domainName := map[string]string{}
	for id, d := range tp.resources("AWS::ApiGateway::DomainName") {
		p := obj(d["Properties"])
		if p["EndpointConfiguration"] == nil || p["SecurityPolicy"] != "TLS_1_2" {
			t.Errorf("domain %v: endpoint %v, security policy %v; want REGIONAL, TLS_1_2", p["DomainName"], p["EndpointConfiguration"], p["SecurityPolicy"])
		}
		if diff := cmp.Diff(map[string]any{"Types": []any{"REGIONAL"}}, p["EndpointConfiguration"]); diff != "" {
			t.Errorf("domain %v endpoint (-want +got):\n%s", p["DomainName"], diff)
		}
		domainName["${"+id+"}"] = flat(p["DomainName"])
	}
	out := map[string]string{}
	for _, m := range tp.resources("AWS::ApiGateway::BasePathMapping") {
		p := obj(m["Properties"])
		if p["BasePath"] != nil {
			t.Errorf("mapping %v has base path %v; the domain's root must map to the stage", p["DomainName"], p["BasePath"])
		}
		out[domainName[flat(p["DomainName"])]] = apiName[flat(p["RestApiId"])]
	}
	return out
}

func TestDomains(t *testing.T) {
	tp := synth(t, withDomain())[0]
	want := map[string]string{}
	for _, h := range hosts() {
		want[h] = "kve-hosts"
	}
	want["api.kve.example.com"], want["console.kve.example.com"] = "kve", "kve"
	if diff := cmp.Diff(want, tp.domains(t)); diff != "" {
		t.Errorf("custom domains → API (-want +got):\n%s", diff)
	}

	t.Run("certificate validated in the zone", func(t *testing.T) {
		certID, p := tp.only(t, "AWS::CertificateManager::Certificate", "", nil)
		got := map[string]any{"domain": p["DomainName"], "validation": p["ValidationMethod"], "options": p["DomainValidationOptions"]}
		wantCert := map[string]any{
			"domain": "*.kve.example.com", "validation": "DNS",
			"options": []any{map[string]any{"DomainName": "*.kve.example.com", "HostedZoneId": "Z0123456789ABCDEFGHIJ"}},
		}
		if diff := cmp.Diff(wantCert, got); diff != "" {
			t.Errorf("certificate (-want +got):\n%s", diff)
		}
		for _, d := range tp.resources("AWS::ApiGateway::DomainName") {
			if got := flat(obj(d["Properties"])["RegionalCertificateArn"]); got != "${"+certID+"}" {
				t.Errorf("domain uses certificate %s", got)
			}
		}
	})
	t.Run("an alias record per name, simple routing in one region", func(t *testing.T) {
		got := map[string]bool{}
		for _, r := range tp.resources("AWS::Route53::RecordSet") {
			p := obj(r["Properties"])
			if p["Type"] != "A" || p["HostedZoneId"] != "Z0123456789ABCDEFGHIJ" || p["AliasTarget"] == nil {
				t.Errorf("record %v: type %v in zone %v, alias %v", p["Name"], p["Type"], p["HostedZoneId"], p["AliasTarget"])
			}
			if p["SetIdentifier"] != nil || p["HealthCheckId"] != nil {
				t.Errorf("record %v routes by latency in a one-region deployment", p["Name"])
			}
			got[flat(p["Name"])] = true
		}
		wantNames := map[string]bool{}
		for _, h := range hosts() {
			wantNames[h+"."] = true
		}
		if diff := cmp.Diff(wantNames, got); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		tp.count(t, "AWS::Route53::HealthCheck", 0)
	})
	t.Run("host-form base URLs are outputs", func(t *testing.T) {
		out := tp.outputs()
		for id, want := range map[string]string{
			"ProxyHostUrlOpenai":    "https://openai.kve.example.com/v1",
			"ProxyHostUrlAnthropic": "https://anthropic.kve.example.com",
			"ApiUrl":                "https://api.kve.example.com/api/v1",
			"ConsoleUrl":            "https://console.kve.example.com",
		} {
			if out[id] != want {
				t.Errorf("output %s = %q, want %q", id, out[id], want)
			}
		}
	})
}

// With a certificate and no hosted zone, the stack creates the domains and
// tells the team what to point them at.
func TestDomainsWithoutZone(t *testing.T) {
	cert := "arn:aws:acm:eu-west-1:111122223333:certificate/0a1b2c3d"
	tp := synth(t, map[string]any{"regions": "eu-west-1", "domain": "kve.example.com", "certificateArn": cert})[0]
	tp.count(t, "AWS::CertificateManager::Certificate", 0)
	tp.count(t, "AWS::Route53::RecordSet", 0)
	for _, d := range tp.resources("AWS::ApiGateway::DomainName") {
		if got := flat(obj(d["Properties"])["RegionalCertificateArn"]); got != cert {
			t.Errorf("domain certificate = %s, want %s", got, cert)
		}
	}
	out := tp.outputs()
	for _, id := range []string{"DnsTargetOpenai", "DnsTargetAzureOpenai", "DnsTargetApi", "DnsTargetConsole"} {
		if out[id] == "" {
			t.Errorf("no output %s", id)
		}
	}
}

func TestOutputs(t *testing.T) {
	tp := synth(t, nil)[0]
	apiID, _ := tp.only(t, "AWS::ApiGateway::RestApi", "Name", "kve")
	dashboardID, _ := tp.only(t, "AWS::CloudWatch::Dashboard", "", nil)
	topicID, _ := tp.only(t, "AWS::SNS::Topic", "TopicName", "kve-alerts")
	endpoint := "https://${" + apiID + "}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod"
	want := map[string]string{
		"ApiUrl":        endpoint + "/api/v1",
		"ConsoleUrl":    endpoint,
		"ProxyBaseUrl":  endpoint,
		"DashboardUrl":  "https://console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${" + dashboardID + "}",
		"AlertTopicArn": "${" + topicID + "}",
	}
	for _, p := range providerNames() {
		base := map[string]string{"openai": "/v1", "mistral": "/v1", "groq": "/v1", "deepseek": "/v1", "openrouter": "/v1", "together": "/v1"}[p]
		want["ProxyUrl"+titleCase(p)] = endpoint + "/" + p + base
	}
	got := tp.outputs()
	for id := range got {
		if _, ok := want[id]; !ok {
			delete(got, id) // pinned elsewhere: secret, queue and topic ARNs
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	for _, id := range []string{"SetupCodeSecretArn", "AlertDeadLetterQueueArn", "AlarmTopicArn"} {
		if tp.outputs()[id] == "" {
			t.Errorf("no output %s", id)
		}
	}
}
