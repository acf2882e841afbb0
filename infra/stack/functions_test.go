package stack

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/keyvault-edge/kve/shared/stackenv"
)

func TestFunctions(t *testing.T) {
	tp := synth(t, nil)[0]
	tests := []struct {
		name    string
		memory  float64
		timeout float64
	}{
		{fnProxy, 512, 900},
		{fnAPI, 1024, 20},
		{fnConsole, 1024, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tp.function(t, tt.name)
			got := map[string]any{
				"runtime": p["Runtime"], "architectures": p["Architectures"], "handler": p["Handler"],
				"memory": p["MemorySize"], "timeout": p["Timeout"],
				"vpc": p["VpcConfig"], "tracing": p["TracingConfig"], "reserved": p["ReservedConcurrentExecutions"],
			}
			want := map[string]any{
				"runtime": "provided.al2023", "architectures": []any{"arm64"}, "handler": "bootstrap",
				"memory": tt.memory, "timeout": tt.timeout,
				"vpc": nil, "tracing": nil, "reserved": nil,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("function (-want +got):\n%s", diff)
			}
			// The role has no managed policy (no AWSLambdaBasicExecutionRole:
			// it would allow logs on every log group).
			roleID := strings.TrimSuffix(strings.TrimPrefix(flat(p["Role"]), "${"), ".Arn}")
			role := obj(tp.resources("AWS::IAM::Role")[roleID]["Properties"])
			if m := role["ManagedPolicyArns"]; m != nil {
				t.Errorf("role %s has managed policies %v", roleID, m)
			}
			logGroup := flat(obj(p["LoggingConfig"])["LogGroup"])
			var writesOwnLogs bool
			for _, s := range tp.statements(t, tt.name) {
				if covers(s.Actions, "logs:PutLogEvents") {
					writesOwnLogs = cmp.Equal(s.Resources, []string{strings.TrimSuffix(logGroup, "}") + ".Arn}"})
				}
			}
			if !writesOwnLogs {
				t.Errorf("the role may not write exactly its own log group %s", logGroup)
			}
		})
	}
	t.Run("each function has its own code asset", func(t *testing.T) {
		// The dummy binaries differ per function, so each must be packaged
		// from its own directory.
		seen := map[string]string{}
		for _, fn := range []string{fnProxy, fnAPI, fnConsole} {
			key := flat(obj(tp.function(t, fn)["Code"])["S3Key"])
			if !strings.HasSuffix(key, ".zip") {
				t.Errorf("%s code key = %q, want a zip asset", fn, key)
			}
			if other, ok := seen[key]; ok {
				t.Errorf("%s and %s share code %s", fn, other, key)
			}
			seen[key] = fn
		}
	})
}

func TestFunctionEnvironment(t *testing.T) {
	deployments := map[string]map[string]any{"default": nil, "with domain": withDomain()}
	for name, context := range deployments {
		t.Run(name, func(t *testing.T) {
			tp := synth(t, context)[0]
			for fn, required := range stackenv.Required {
				vars := obj(obj(tp.function(t, fn)["Environment"])["Variables"])
				for _, v := range required {
					if flat(vars[v]) == "" {
						t.Errorf("%s: %s is not set", fn, v)
					}
				}
				for v := range vars {
					if !knownVariable(v) {
						t.Errorf("%s: %s is not a variable shared/deploy reads", fn, v)
					}
				}
			}
		})
	}
}

// knownVariable reports whether name is one of shared/deploy's variables.
func knownVariable(name string) bool {
	switch name {
	case stackenv.EnvTable, stackenv.EnvPepperSecret, stackenv.EnvSealSecret, stackenv.EnvSetupSecret, stackenv.EnvKMSKey,
		stackenv.EnvAlertTopic, stackenv.EnvDomain, stackenv.EnvPublicURL, stackenv.EnvMailFrom, stackenv.EnvAllowPrivate,
		stackenv.EnvKeyCacheTTL, stackenv.EnvMaxBodyBytes, stackenv.EnvLogLevel, stackenv.EnvSecretsPrefix,
		stackenv.EnvReplicaRegions, stackenv.EnvReplicaKMSKey, stackenv.EnvAlertDLQ:
		return true
	}
	return false
}

func TestFunctionEnvironmentValues(t *testing.T) {
	tp := synth(t, withDomain())[0]
	tableID, _ := tp.only(t, "AWS::DynamoDB::GlobalTable", "", nil)
	keyID, _ := tp.only(t, "AWS::KMS::Key", "", nil)
	topicID, _ := tp.only(t, "AWS::SNS::Topic", "TopicName", "kve-alerts")
	queueID, _ := tp.only(t, "AWS::SQS::Queue", "", nil)
	secret := func(name string) string {
		id, _ := tp.only(t, "AWS::SecretsManager::Secret", "Name", name)
		return "${" + id + "}"
	}
	optional := map[string]string{
		stackenv.EnvDomain:       "kve.example.com",
		stackenv.EnvAllowPrivate: "10.0.0.0/8,192.168.1.0/24",
		stackenv.EnvLogLevel:     "debug",
	}
	proxy := map[string]string{
		stackenv.EnvTable:        "${" + tableID + "}",
		stackenv.EnvPepperSecret: secret("kve/system/pepper"),
		stackenv.EnvAlertTopic:   "${" + topicID + "}",
		stackenv.EnvPublicURL:    "https://console.kve.example.com",
	}
	manage := map[string]string{
		stackenv.EnvTable:        "${" + tableID + "}",
		stackenv.EnvPepperSecret: secret("kve/system/pepper"),
		stackenv.EnvSealSecret:   secret("kve/system/seal"),
		stackenv.EnvSetupSecret:  secret("kve/system/setup"),
		stackenv.EnvKMSKey:       "${" + keyID + ".Arn}",
		stackenv.EnvAlertTopic:   "${" + topicID + "}",
		stackenv.EnvPublicURL:    "https://console.kve.example.com",
		stackenv.EnvMailFrom:     "kve@example.com",
		stackenv.EnvAlertDLQ:     "${" + queueID + ".Arn}",
	}
	for fn, want := range map[string]map[string]string{fnProxy: proxy, fnAPI: manage, fnConsole: manage} {
		t.Run(fn, func(t *testing.T) {
			for k, v := range optional {
				want[k] = v
			}
			got := map[string]string{}
			for k, v := range obj(obj(tp.function(t, fn)["Environment"])["Variables"]) {
				got[k] = flat(v)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("environment (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPublicURLWithoutDomain(t *testing.T) {
	tp := synth(t, nil)[0]
	apiID, _ := tp.only(t, "AWS::ApiGateway::RestApi", "Name", "kve")
	vars := obj(obj(tp.function(t, fnConsole)["Environment"])["Variables"])
	want := "https://${" + apiID + "}.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod"
	if got := flat(vars[stackenv.EnvPublicURL]); got != want {
		t.Errorf("%s = %s, want %s", stackenv.EnvPublicURL, got, want)
	}
	if _, ok := vars[stackenv.EnvDomain]; ok {
		t.Errorf("%s is set without a domain", stackenv.EnvDomain)
	}
}

// A value the functions would refuse at start stops synthesis, with the
// functions' own message.
func TestEnvironmentCheckedLikeTheFunctions(t *testing.T) {
	tests := []struct {
		name, key, value, want string
	}{
		{"key cache above an hour", "keyCacheTtl", "2h", stackenv.EnvKeyCacheTTL},
		{"body cap below 1 KiB", "maxBodyBytes", "100", stackenv.EnvMaxBodyBytes},
		{"cache TTL not a duration", "keyCacheTtl", "soon", stackenv.EnvKeyCacheTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(t, map[string]any{tt.key: tt.value})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New error = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

func TestMissingAssets(t *testing.T) {
	dir := dummyAssets(t)
	if err := os.Remove(filepath.Join(dir, fnConsole, "bootstrap")); err != nil {
		t.Fatal(err)
	}
	_, err := build(t, map[string]any{"assetDir": dir})
	if err == nil || !strings.Contains(err.Error(), "console function") || !strings.Contains(err.Error(), "make build") {
		t.Errorf("New error = %v, want one naming the console function and make build", err)
	}
}
