package nstest

import (
	"os"
	"regexp"
	"testing"
)

// TestCIRunExportsCI: the CI entry point sets CI=true itself, so that a
// privileged test that cannot run fails there (see RequireRoot and Unavailable) whatever the
// runner's environment.
func TestCIRunExportsCI(t *testing.T) {
	b, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^export CI=true$`).Match(b) {
		t.Errorf(".ci/run does not export CI=true:\n%s", b)
	}
}
