package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoEtcdBuild builds overlayd with -tags noetcd, the build for
// appliances that use the directory store: it must leave etcdreg out, be
// smaller than the full build and refuse an etcd store with a clear
// message, while the directory store still works.
func TestNoEtcdBuild(t *testing.T) {
	full := overlaydBinary(t)
	small := filepath.Join(t.TempDir(), "overlayd")
	cmd := exec.Command("go", "build", "-tags", "noetcd", "-trimpath", "-ldflags=-s -w", "-o", small, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags noetcd: %v\n%s", err, out)
	}
	fs, err := os.Stat(full)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := os.Stat(small)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("overlayd: %d bytes; with -tags noetcd: %d bytes", fs.Size(), ss.Size())
	// The etcd client is etcdreg's own, small (TestEtcdClientIsOwn): the
	// build leaves etcdreg out, and is smaller by it.
	if ss.Size() >= fs.Size() {
		t.Errorf("the noetcd build (%d bytes) is not smaller than the full one (%d bytes)", ss.Size(), fs.Size())
	}
	deps, err := exec.Command("go", "list", "-tags", "noetcd", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -tags noetcd -deps: %v\n%s", err, deps)
	}
	if strings.Contains(string(deps), "/overlay/registry/etcdreg") {
		t.Errorf("the noetcd build links etcdreg")
	}

	state, netns := t.TempDir(), t.TempDir()
	run := func(store string) (string, error) {
		// detach opens the store before it looks for the endpoint.
		out, err := exec.Command(small, "detach", "nosuch", "--state-dir", state, "--netns-dir", netns, "--store", store).CombinedOutput()
		return string(out), err
	}
	out, err := run("etcd://127.0.0.1:1/overlaynet")
	if err == nil || !strings.Contains(out, "without etcd support") {
		t.Errorf("etcd store on a noetcd build: %v\n%s", err, out)
	}
	// The directory store is still there: detach fails for the unknown
	// endpoint, not for the store.
	out, _ = run("dir:" + t.TempDir())
	if strings.Contains(out, "--store") || strings.Contains(out, "etcd") {
		t.Errorf("dir store on a noetcd build:\n%s", out)
	}
	t.Logf("dir store on a noetcd build: %s", strings.TrimSpace(out))
}
