package rie

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinaryFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "aws-lambda-rie")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string
		want    string
		wantErr bool
	}{
		{"KVE_RIE names the binary", fake, fake, false},
		// A wrong explicit setting is an error, not a reason to look elsewhere.
		{"KVE_RIE names nothing", filepath.Join(dir, "missing"), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KVE_RIE", tt.env)
			got, err := Binary()
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("Binary() = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// Without the emulator, Start skips the test, unless KVE_REQUIRE_SERVICES=1
// (CI), where a skipped emulator test would hide a broken setup: then it
// fails. The test runs itself as a child process to watch that outcome.
func TestStartWithoutBinary(t *testing.T) {
	if os.Getenv("RIE_TEST_CHILD") == "1" {
		Start(t, "/nonexistent/bootstrap")
		t.Error("Start returned without the emulator")
		return
	}
	tests := []struct {
		name, require, want string
	}{
		{"skips", "", "--- SKIP: TestStartWithoutBinary"},
		{"fails when services are required", "1", "--- FAIL: TestStartWithoutBinary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestStartWithoutBinary$", "-test.v")
			cmd.Env = append(os.Environ(), "RIE_TEST_CHILD=1", "KVE_REQUIRE_SERVICES="+tt.require,
				"KVE_RIE="+filepath.Join(t.TempDir(), "missing"))
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), tt.want) || !strings.Contains(string(out), "aws-lambda-rie not found: "+Install) {
				t.Errorf("child test output lacks %q and the install hint:\n%s", tt.want, out)
			}
		})
	}
}
