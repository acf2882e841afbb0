package stack

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigateway"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"
)

// monitoring is what newMonitoring watches in a region.
type monitoring struct {
	fs        functions
	apis      []awsapigateway.RestApi // main, and the host-form API with a domain
	tableName string
	alerts    *alerts // the primary region's alert topic and DLQ; nil elsewhere
	topic     awssns.ITopic
}

// fiveMinutes is the period of every alarm: CloudWatch's standard
// resolution alarms cost $0.10 per metric a month at any period of a
// minute or more, and 5 minutes smooths single slow requests.
func fiveMinutes() awscdk.Duration { return awscdk.Duration_Minutes(jsii.Number(5)) }

// newMonitoring creates the region's alarms, each notifying the alarm
// topic when it fires and when it clears, and the dashboard.
//
//   - API 5xx: the share of 5xx answers, ≥ 5 % over three 5-minute periods.
//     A rate, not a count, so that a busy hour with a few upstream 502s
//     stays quiet; upstream 5xx pass through the proxy and count too.
//   - Lambda errors (≥ 5 in 5 minutes: crashes and timeouts, not handled
//     errors) and throttles (any: a throttled proxy request is refused).
//   - DynamoDB read and write throttle events (any, summed).
//   - In the primary region: alert deliveries that failed (any; for HTTPS
//     every failed attempt counts) and messages in the dead-letter queue
//     (any: an alert no subscriber got).
//
// Missing data is not breaching: an idle deployment sends no metrics.
func newMonitoring(r *region, m monitoring) awscloudwatch.Dashboard {
	var alarms []awscloudwatch.IAlarm
	alarm := func(id, description string, metric awscloudwatch.IMetric, threshold, periods float64) {
		a := awscloudwatch.NewAlarm(r.stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmDescription:   jsii.String("kve " + r.s.Name + ": " + description),
			Metric:             metric,
			Threshold:          jsii.Number(threshold),
			EvaluationPeriods:  jsii.Number(periods),
			ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
			TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		action := awscloudwatchactions.NewSnsAction(m.topic)
		a.AddAlarmAction(action)
		a.AddOkAction(action)
		alarms = append(alarms, a)
	}

	for _, api := range m.apis {
		id := *api.Node().Id()
		alarm(id+"5xxAlarm", "share of 5xx answers on "+*api.RestApiName(),
			api.MetricServerError(&awscloudwatch.MetricOptions{Statistic: jsii.String("Average"), Period: fiveMinutes()}),
			0.05, 3)
	}
	for _, f := range m.fs.all() {
		id := titleCase(f.name)
		alarm(id+"ErrorsAlarm", f.name+" function errors (crashes, timeouts)",
			f.fn.MetricErrors(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes()}), 5, 1)
		alarm(id+"ThrottlesAlarm", f.name+" function throttled",
			f.fn.MetricThrottles(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes()}), 1, 1)
	}
	alarm("TableThrottlesAlarm", "DynamoDB throttled reads or writes", awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression: jsii.String("reads + writes"),
		Label:      jsii.String("throttle events"),
		Period:     fiveMinutes(),
		UsingMetrics: &map[string]awscloudwatch.IMetric{
			"reads":  tableMetric(m.tableName, "ReadThrottleEvents", "Sum"),
			"writes": tableMetric(m.tableName, "WriteThrottleEvents", "Sum"),
		},
	}), 1, 1)
	if m.alerts != nil {
		alarm("AlertDeliveryAlarm", "alert deliveries failed (SNS)",
			m.alerts.topic.MetricNumberOfNotificationsFailed(&awscloudwatch.MetricOptions{Statistic: jsii.String("Sum"), Period: fiveMinutes()}), 1, 1)
		alarm("AlertDeadLetterAlarm", "alerts in the dead-letter queue",
			m.alerts.dlq.MetricApproximateNumberOfMessagesVisible(&awscloudwatch.MetricOptions{Statistic: jsii.String("Maximum"), Period: fiveMinutes()}), 1, 1)
	}
	return newDashboard(r, m, alarms)
}

// newDashboard shows the region at a glance: traffic and errors per API,
// the functions, the table, the alerts and every alarm's state. One
// dashboard per region ($3 a month each beyond the account's first three).
func newDashboard(r *region, m monitoring, alarms []awscloudwatch.IAlarm) awscloudwatch.Dashboard {
	opts := func(stat string) *awscloudwatch.MetricOptions {
		return &awscloudwatch.MetricOptions{Statistic: jsii.String(stat), Period: fiveMinutes()}
	}
	graph := func(title string, left ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &left, Width: jsii.Number(8), Height: jsii.Number(6),
		})
	}
	var rows [][]awscloudwatch.IWidget
	rows = append(rows, []awscloudwatch.IWidget{awscloudwatch.NewAlarmStatusWidget(&awscloudwatch.AlarmStatusWidgetProps{
		Title: jsii.String(r.s.Name + ": alarms"), Alarms: alarmRefs(alarms), Width: jsii.Number(24),
	})})
	for _, api := range m.apis {
		name := *api.RestApiName()
		rows = append(rows, []awscloudwatch.IWidget{
			graph(name+": requests", api.MetricCount(opts("Sum"))),
			graph(name+": errors", api.MetricClientError(opts("Sum")), api.MetricServerError(opts("Sum"))),
			graph(name+": latency", api.MetricLatency(opts("p50")), api.MetricLatency(opts("p99"))),
		})
	}
	var invocations, failures, durations []awscloudwatch.IMetric
	for _, f := range m.fs.all() {
		invocations = append(invocations, f.fn.MetricInvocations(labelled(opts("Sum"), f.name)))
		failures = append(failures,
			f.fn.MetricErrors(labelled(opts("Sum"), f.name+" errors")),
			f.fn.MetricThrottles(labelled(opts("Sum"), f.name+" throttles")))
		durations = append(durations, f.fn.MetricDuration(labelled(opts("p99"), f.name+" p99")))
	}
	rows = append(rows, []awscloudwatch.IWidget{
		graph("functions: invocations", invocations...),
		graph("functions: errors and throttles", failures...),
		graph("functions: duration", durations...),
	})
	rows = append(rows, []awscloudwatch.IWidget{
		graph("table: capacity used",
			tableMetric(m.tableName, "ConsumedReadCapacityUnits", "Sum"),
			tableMetric(m.tableName, "ConsumedWriteCapacityUnits", "Sum")),
		graph("table: throttles",
			tableMetric(m.tableName, "ReadThrottleEvents", "Sum"),
			tableMetric(m.tableName, "WriteThrottleEvents", "Sum")),
	})
	if m.alerts != nil {
		t := m.alerts.topic
		rows = append(rows, []awscloudwatch.IWidget{
			graph("alerts", t.MetricNumberOfMessagesPublished(opts("Sum")),
				t.MetricNumberOfNotificationsDelivered(opts("Sum")), t.MetricNumberOfNotificationsFailed(opts("Sum"))),
			graph("alerts: dead letters", m.alerts.dlq.MetricApproximateNumberOfMessagesVisible(opts("Maximum"))),
		})
	}
	widgets := make([]*[]awscloudwatch.IWidget, len(rows))
	for i := range rows {
		widgets[i] = &rows[i]
	}
	return awscloudwatch.NewDashboard(r.stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DefaultInterval: awscdk.Duration_Hours(jsii.Number(3)),
		Widgets:         &widgets,
	})
}

func tableMetric(table, name, stat string) awscloudwatch.IMetric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String("AWS/DynamoDB"),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{"TableName": jsii.String(table)},
		Statistic:     jsii.String(stat),
		Period:        fiveMinutes(),
	})
}

func labelled(o *awscloudwatch.MetricOptions, label string) *awscloudwatch.MetricOptions {
	o.Label = jsii.String(label)
	return o
}
