package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/missgen"
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

// startPythonResolver runs testdata/arpd.py in lab's overlay namespace
// (nsenter --net, so that it sees the namespace's devices) on reg's
// directory: registry=dir reads the files per miss as the lab did,
// registry=mem preloads them into a dict. The process is started by start,
// since it must subscribe before misses are raised; run only checks it
// is alive. stop kills it by its pid and reaps it; if it died before, that
// is the benchmark's failure, with its standard error.
func startPythonResolver(tb testing.TB, lab *missgen.Lab, reg benchRegistry) (func(), func() (string, error)) {
	requirePython(tb)
	args := []string{"--net=" + lab.Overlay.Path(), pythonInterpreter, pythonArpdScript, reg.dir, "vxlan1"}
	if reg.name == "mem" {
		args = append(args, "--preload")
	}
	cmd := exec.Command("nsenter", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("python arpd: %v", err)
	}
	exited := make(chan struct{})
	var waitErr error
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() && strings.TrimSpace(sc.Text()) == "ready" {
			ready <- nil
		} else {
			ready <- errors.New("exited before it was ready")
		}
		for sc.Scan() {
		}
		waitErr = cmd.Wait() // after stdout is drained, as Wait requires
		close(exited)
	}()
	var stopOnce sync.Once
	kill := func() {
		stopOnce.Do(func() {
			cmd.Process.Signal(syscall.SIGKILL) // by the pid we started
			<-exited                            // reaped by Wait
		})
	}
	select {
	case err := <-ready:
		if err != nil {
			kill()
			tb.Fatalf("python arpd: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
	case <-time.After(30 * time.Second):
		kill()
		tb.Fatalf("python arpd: not ready within 30s: %s", bytes.TrimSpace(stderr.Bytes()))
	}
	tb.Cleanup(kill)
	run := func() {
		select {
		case <-exited:
			tb.Fatalf("python arpd died: %v: %s", waitErr, bytes.TrimSpace(stderr.Bytes()))
		default:
		}
	}
	return run, func() (string, error) {
		select {
		case <-exited:
			return "", fmt.Errorf("python arpd died: %v: %s", waitErr, bytes.TrimSpace(stderr.Bytes()))
		default:
		}
		kill()
		return "", nil
	}
}
