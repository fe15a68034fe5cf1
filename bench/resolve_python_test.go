package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// pythonArpd is the interpreter and script of the Python peer: the old
// lab's arpd on Debian's python3-pyroute2 (scripts/setup.sh installs it).
// Debian's interpreter by its path: a python3 earlier on PATH (pyenv, a
// virtualenv) does not see Debian's packages.
const (
	pythonInterpreter = "/usr/bin/python3"
	pythonArpdScript  = "testdata/arpd.py"
)

// requirePython skips (fails under CI=true) when the Python peer cannot run.
func requirePython(tb testing.TB) {
	tb.Helper()
	out, err := exec.Command(pythonInterpreter, "-c", "import pyroute2").CombinedOutput()
	if err == nil {
		return
	}
	why := fmt.Sprintf("the Python peer needs %s with pyroute2 (Debian's python3-pyroute2, scripts/setup.sh): %v: %s",
		pythonInterpreter, err, bytes.TrimSpace(out))
	if os.Getenv("CI") == "true" {
		tb.Fatal(why)
	}
	tb.Skip(why)
}
