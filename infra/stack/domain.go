package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsroute53"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsroute53targets"
	"github.com/aws/jsii-runtime-go"
)

// newDomains gives the region its custom domains (DESIGN §4, host form):
// <provider>.<domain> for every builtin provider, mapped to the host-form
// API (everything to the proxy), and api.<domain> and console.<domain>,
// mapped to the main API. Each is a REGIONAL API Gateway domain with TLS
// 1.2 or later and the region's certificate for *.<domain>.
//
// With a hosted zone the stack writes an alias A record per name. In
// several regions the provider names get latency records, one per region,
// each guarded by a health check of that region's API, so Route 53 sends
// a client to the nearest healthy region; api.<domain> and
// console.<domain> exist in the primary region only, because management
// writes rely on conditional writes and transactions that only hold within
// one region of an eventually consistent global table. Without a hosted
// zone the stack outputs the names to point (CNAME) at.
func newDomains(r *region, main, hosts awsapigateway.RestApi) {
	var zone awsroute53.IHostedZone
	if r.s.HostedZoneID != "" {
		zone = awsroute53.HostedZone_FromHostedZoneAttributes(r.stack, jsii.String("Zone"), &awsroute53.HostedZoneAttributes{
			HostedZoneId: jsii.String(r.s.HostedZoneID),
			ZoneName:     jsii.String(r.s.HostedZoneName),
		})
	}
	cert := certificate(r, zone)

	var health awsroute53.IHealthCheck
	if r.s.MultiRegion() && zone != nil {
		// Every 30 s from Route 53's checkers, three failures in a row mark
		// the region unhealthy. GET /prod/healthz on the default endpoint
		// runs the proxy function (the hot path) in this very region.
		health = awsroute53.NewHealthCheck(r.stack, jsii.String("HealthCheck"), &awsroute53.HealthCheckProps{
			Type:             awsroute53.HealthCheckType_HTTPS,
			Fqdn:             jsii.String(defaultHost(r, main)),
			Port:             jsii.Number(443),
			ResourcePath:     jsii.String("/" + stageName + "/healthz"),
			RequestInterval:  awscdk.Duration_Seconds(jsii.Number(30)),
			FailureThreshold: jsii.Number(3),
		})
	}

	add := func(host string, api awsapigateway.RestApi, latency bool) {
		fqdn := host + "." + r.s.Domain
		id := titleCase(host)
		dn := awsapigateway.NewDomainName(r.stack, jsii.String(id+"Domain"), &awsapigateway.DomainNameProps{
			DomainName:     jsii.String(fqdn),
			Certificate:    cert,
			EndpointType:   awsapigateway.EndpointType_REGIONAL,
			SecurityPolicy: awsapigateway.SecurityPolicy_TLS_1_2,
			Mapping:        api,
		})
		if zone == nil {
			output(r, "DnsTarget"+id, "point "+fqdn+" (CNAME) at this name", *dn.DomainNameAliasDomainName())
			return
		}
		props := &awsroute53.ARecordProps{
			Zone:       zone,
			RecordName: jsii.String(fqdn),
			Target:     awsroute53.RecordTarget_FromAlias(awsroute53targets.NewApiGatewayDomain(dn)),
		}
		if latency && r.s.MultiRegion() {
			props.Region = jsii.String(r.name)
			props.SetIdentifier = jsii.String(r.name)
			props.HealthCheck = health
		}
		awsroute53.NewARecord(r.stack, jsii.String(id+"Record"), props)
	}
	for _, p := range providerNames() {
		add(p, hosts, true)
	}
	if r.primary {
		add("api", main, false)
		add("console", main, false)
	}
}

// certificate returns the region's certificate for *.<domain>: the one
// given for this region, or one created and validated through the hosted
// zone (Validate guarantees one of the two). Certificates are free;
// removal DESTROY for a created one.
func certificate(r *region, zone awsroute53.IHostedZone) awscertificatemanager.ICertificate {
	if arn, ok := r.s.certificateFor(r.name); ok {
		return awscertificatemanager.Certificate_FromCertificateArn(r.stack, jsii.String("Certificate"), jsii.String(arn))
	}
	cert := awscertificatemanager.NewCertificate(r.stack, jsii.String("Certificate"), &awscertificatemanager.CertificateProps{
		DomainName: jsii.String("*." + r.s.Domain),
		Validation: awscertificatemanager.CertificateValidation_FromDns(zone),
	})
	cert.ApplyRemovalPolicy(awscdk.RemovalPolicy_DESTROY)
	return cert
}
