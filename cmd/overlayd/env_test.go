package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/rtnl"
)

// runEnv runs overlayd args in n's netns with the OVERLAYD_* settings of env
// only (no flag added), as a systemd unit or a shell profile would.
func (n *simNode) runEnv(env []string, args ...string) result {
	n.t.Helper()
	cmd := n.envCommand(env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		n.t.Fatalf("run overlayd %q: %v", args, err)
	}
	return r
}

// envCommand is `overlayd ARGS` inside the node's netns (nsenter --net):
// overlayd itself needs no tools (no iproute2), so it gets an empty PATH,
// and none of the caller's OVERLAYD_* settings, only env.
func (n *simNode) envCommand(env []string, args ...string) *exec.Cmd {
	argv := append([]string{"--net=" + filepath.Join(rtnl.DefaultNetNSDir, n.name), overlaydBinary(n.t)}, args...)
	cmd := exec.Command("nsenter", argv...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") && !strings.HasPrefix(kv, "OVERLAYD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, "PATH=/nonexistent"), env...)
	return cmd
}

// TestEnvironmentSettings: OVERLAYD_NETNS_DIR, OVERLAYD_STATE_DIR,
// OVERLAYD_STORE, OVERLAYD_LOG_LEVEL and OVERLAYD_LOG_JSON stand for their
// flags (a flag given still wins); and deploy/overlayd.service, whose
// settings are such variables, runs the daemon on the state directory and
// store they name.
func TestEnvironmentSettings(t *testing.T) {
	n := newUnderlayNode(t, "ev")
	storeDir := strings.TrimPrefix(n.store, "dir:")
	env := []string{"OVERLAYD_NETNS_DIR=" + n.dir, "OVERLAYD_STATE_DIR=" + n.state, "OVERLAYD_STORE=" + n.store}

	if r := n.runEnv(env, "create", "--local", "192.0.2.2"); r.code != 0 {
		t.Fatalf("create from the environment: exit %d: %s", r.code, r.stderr)
	}
	for _, p := range []string{filepath.Join(n.state, "overlay.json"), filepath.Join(n.dir, "overns")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("create did not use the environment's directories: %v", err)
		}
	}
	r := n.runEnv(append(env, "OVERLAYD_LOG_LEVEL=debug", "OVERLAYD_LOG_JSON=1"), "attach", "pink", "--ip", "198.51.100.2/24")
	if r.code != 0 {
		t.Fatalf("attach from the environment: exit %d: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, `"level":"DEBUG"`) || !strings.Contains(r.stderr, `"op":"overlay: attach","step":"register"`) {
		t.Errorf("OVERLAYD_LOG_LEVEL=debug OVERLAYD_LOG_JSON=1: stderr %q, want JSON debug lines", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(storeDir, "arp", "198.51.100.2")); err != nil {
		t.Errorf("attach did not register in OVERLAYD_STORE: %v", err)
	}
	// A flag wins over its variable, before or after the command name.
	bad := append(env, "OVERLAYD_STATE_DIR=/nonexistent/state")
	for _, args := range [][]string{{"status", "--state-dir", n.state}, {"--state-dir", n.state, "status"}} {
		if r := n.runEnv(bad, args...); r.code != 0 || !strings.Contains(r.stdout, "pink") {
			t.Errorf("%q with OVERLAYD_STATE_DIR elsewhere: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
		}
	}

	// status reads the kernel and the state directory, never the store (the
	// README's claim): an unreachable etcd does not matter to it.
	t.Run("status reads no store", func(t *testing.T) {
		r := n.runEnv(env, "status", "--store", "etcd://192.0.2.99:2379/nowhere?timeout=1s")
		if r.code != 0 || !strings.Contains(r.stdout, "pink") {
			t.Errorf("status with an unreachable etcd store: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})

	// The systemd unit: its Environment= settings (paths moved into this
	// test's directories) and its ExecStart.
	unit, err := os.ReadFile("../../deploy/overlayd.service")
	if err != nil {
		t.Fatal(err)
	}
	unitEnv := []string{"OVERLAYD_NETNS_DIR=" + n.dir} // the unit keeps the default /var/run/netns
	var execStart []string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "Environment="):
			kv := strings.TrimPrefix(line, "Environment=")
			key, _, _ := strings.Cut(kv, "=")
			if !strings.HasPrefix(key, "OVERLAYD_") || !strings.Contains(globalHelp(), "env "+key) {
				t.Errorf("the unit sets %s, which overlayd does not read", key)
			}
			kv = strings.ReplaceAll(kv, "/var/lib/overlayd/store", storeDir)
			kv = strings.ReplaceAll(kv, "/var/lib/overlayd", n.state)
			unitEnv = append(unitEnv, kv)
		case strings.HasPrefix(line, "ExecStart="):
			execStart = strings.Fields(strings.TrimPrefix(line, "ExecStart="))
		}
	}
	if len(unitEnv) < 3 || len(execStart) < 2 || execStart[0] != "/usr/local/bin/overlayd" {
		t.Fatalf("unit: environment %q, ExecStart %q", unitEnv, execStart)
	}
	cmd := n.envCommand(unitEnv, execStart[1:]...)
	logs := &daemon{cmd: cmd, done: make(chan error, 1)}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { logs.done <- cmd.Wait() }()
	t.Cleanup(func() { logs.stop(t) })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "msg=reconciled") {
		if time.Now().After(deadline) {
			t.Fatalf("the unit's daemon did not start:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if want := "store=" + n.store; !strings.Contains(logs.String(), want) {
		t.Errorf("the unit's daemon does not use OVERLAYD_STORE (%s):\n%s", want, logs)
	}
	addr := ""
	for i, a := range execStart {
		if a == "--metrics" && i+1 < len(execStart) {
			addr = execStart[i+1]
		}
	}
	if body := n.scrape(addr); !strings.Contains(body, "200 OK") || !strings.Contains(body, "overlayd_misses_total") {
		t.Errorf("the unit's metrics at %s: %q", addr, body)
	}
	cmd.Process.Signal(syscall.SIGTERM) // the unit's KillSignal
	select {
	case err := <-logs.done:
		if err != nil {
			t.Errorf("daemon after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("daemon ignored SIGTERM")
	}
}

// globalHelp is overlayd --help (it names each flag's variable).
func globalHelp() string {
	var stdout, stderr bytes.Buffer
	runMain(context.Background(), []string{"--help"}, &stdout, &stderr)
	return stdout.String()
}
