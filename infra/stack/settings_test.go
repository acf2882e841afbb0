package stack

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	certEU = "arn:aws:acm:eu-west-1:111122223333:certificate/0a1b2c3d-eu"
	certUS = "arn:aws:acm:us-east-1:111122223333:certificate/0a1b2c3d-us"
)

func lookup(m map[string]any) func(string) any { return func(k string) any { return m[k] } }

func TestParseSettings(t *testing.T) {
	defaults := Settings{
		Name:             "kve",
		LogRetentionDays: 30,
		WAFRateLimit:     6000,
		AssetDir:         "infra/assets",
	}
	tests := []struct {
		name    string
		context map[string]any
		want    func(s *Settings)
	}{
		{"empty context gives the defaults", map[string]any{}, func(*Settings) {}},
		{
			"values from -c are strings",
			map[string]any{
				"name": "kve-staging", "regions": "us-east-1, eu-west-1", "domain": "KVE.Example.com",
				"hostedZoneId": "Z0123456789ABCDEFGHIJ", "hostedZoneName": "example.com",
				"certificateArn": certUS + "," + certEU, "alertEmail": "ops@example.com",
				"allowPrivateUpstreams": "10.0.0.0/8, fd00::/8", "logRetentionDays": "90",
				"waf": "true", "wafRateLimit": "1200", "mailFrom": "kve@example.com",
				"keyCacheTtl": "1m", "maxBodyBytes": "2048", "logLevel": "warn", "assetDir": "/tmp/assets",
			},
			func(s *Settings) {
				*s = Settings{
					Name: "kve-staging", Regions: []string{"us-east-1", "eu-west-1"}, Domain: "kve.example.com",
					HostedZoneID: "Z0123456789ABCDEFGHIJ", HostedZoneName: "example.com",
					CertificateARNs: []string{certUS, certEU}, AlertEmail: "ops@example.com",
					AllowPrivateUpstreams: []string{"10.0.0.0/8", "fd00::/8"}, LogRetentionDays: 90,
					WAF: true, WAFRateLimit: 1200, MailFrom: "kve@example.com",
					KeyCacheTTL: "1m", MaxBodyBytes: "2048", LogLevel: "warn", AssetDir: "/tmp/assets",
				}
			},
		},
		{
			"values from cdk.json keep their JSON types",
			map[string]any{"regions": []any{"eu-west-1"}, "waf": true, "logRetentionDays": float64(7), "wafRateLimit": float64(100)},
			func(s *Settings) {
				s.Regions, s.WAF, s.LogRetentionDays, s.WAFRateLimit = []string{"eu-west-1"}, true, 7, 100
			},
		},
		{
			"hosted zone name defaults to the domain",
			map[string]any{"domain": "kve.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"},
			func(s *Settings) {
				s.Domain, s.HostedZoneID, s.HostedZoneName = "kve.example.com", "Z0123456789ABCDEFGHIJ", "kve.example.com"
			},
		},
		{
			"one certificate serves the environment-agnostic stack",
			map[string]any{"domain": "kve.example.com", "certificateArn": certEU},
			func(s *Settings) {
				s.Domain, s.HostedZoneName, s.CertificateARNs = "kve.example.com", "kve.example.com", []string{certEU}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSettings(lookup(tt.context))
			if err != nil {
				t.Fatalf("ParseSettings: %v", err)
			}
			want := defaults
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSettingsRefuses(t *testing.T) {
	tests := []struct {
		name    string
		context map[string]any
		want    string // in the error
	}{
		{"name with capitals", map[string]any{"name": "KVE"}, `name "KVE"`},
		{"unknown region shape", map[string]any{"regions": "europe"}, `"europe" is not a region`},
		{"region twice", map[string]any{"regions": "eu-west-1,eu-west-1"}, "eu-west-1 is listed twice"},
		{"domain without certificate or zone", map[string]any{"domain": "kve.example.com"}, "needs certificateArn, or hostedZoneId"},
		{"zone without domain", map[string]any{"hostedZoneId": "Z0123456789ABCDEFGHIJ"}, "hostedZoneId needs domain"},
		{"domain outside the zone", map[string]any{"domain": "kve.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ", "hostedZoneName": "example.org"}, "not inside hosted zone"},
		{"malformed zone id", map[string]any{"domain": "kve.example.com", "hostedZoneId": "zone-1"}, "not a Route 53 zone id"},
		{"certificate without domain", map[string]any{"certificateArn": certEU}, "certificateArn needs domain"},
		{"not a certificate ARN", map[string]any{"domain": "kve.example.com", "certificateArn": "arn:aws:iam::1:role/x"}, "not an ACM certificate ARN"},
		{"certificate outside the regions", map[string]any{"regions": "eu-west-1", "domain": "kve.example.com", "certificateArn": certUS}, "not one of the regions"},
		{"region without certificate", map[string]any{"regions": "us-east-1,eu-west-1", "domain": "kve.example.com", "certificateArn": certUS}, "no certificate in eu-west-1"},
		{"several certificates, no regions", map[string]any{"domain": "kve.example.com", "certificateArn": certUS + "," + certEU}, "set regions"},
		{"bad CIDR", map[string]any{"allowPrivateUpstreams": "10.0.0.0/33"}, "allowPrivateUpstreams"},
		{"retention CloudWatch does not offer", map[string]any{"logRetentionDays": "31"}, "logRetentionDays 31"},
		{"alert email with a display name", map[string]any{"alertEmail": "Ops <ops@example.com>"}, "alertEmail"},
		{"mail sender not an address", map[string]any{"mailFrom": "example.com"}, "mailFrom"},
		{"rate limit below WAF's minimum", map[string]any{"wafRateLimit": "5"}, "wafRateLimit 5"},
		{"unknown log level", map[string]any{"logLevel": "trace"}, `logLevel "trace"`},
		{"waf not a boolean", map[string]any{"waf": "maybe"}, "waf: want true or false"},
		{"retention not a number", map[string]any{"logRetentionDays": "a month"}, "logRetentionDays: want a whole number"},
		{"regions of the wrong type", map[string]any{"regions": float64(1)}, "regions: want a comma-separated string or a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSettings(lookup(tt.context))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseSettings error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestCertificateFor(t *testing.T) {
	s := Settings{CertificateARNs: []string{certUS, certEU}}
	tests := []struct {
		region string
		want   string
		ok     bool
	}{
		{"us-east-1", certUS, true},
		{"eu-west-1", certEU, true},
		{"ap-south-1", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.region, func(t *testing.T) {
			got, ok := s.certificateFor(tt.region)
			if got != tt.want || ok != tt.ok {
				t.Errorf("certificateFor(%s) = %q, %v; want %q, %v", tt.region, got, ok, tt.want, tt.ok)
			}
		})
	}
}
