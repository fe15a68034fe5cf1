package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestNetworkAgreedDirCLI: on a shared directory store, the first create
// publishes the overlay's network in STORE/config, and a second node
// configured differently is refused by create, attach and run, each
// difference named (see testNetworkAgreed).
func TestNetworkAgreedDirCLI(t *testing.T) {
	n1 := newUnderlayNode(t, "na")
	n2 := newUnderlayNode(t, "nb")
	n2.store = n1.store
	n1.ok("create", "--local", "192.0.2.2")
	root := strings.TrimPrefix(n1.store, "dir:")
	b, err := os.ReadFile(filepath.Join(root, "config"))
	if err != nil {
		t.Fatalf("create published no network: %v", err)
	}
	var got registry.Network
	if err := json.Unmarshal(b, &got); err != nil || got != overlay.DefaultConfig().Network() {
		t.Fatalf("STORE/config = %q (%v), want %+v", b, err, overlay.DefaultConfig().Network())
	}
	if tmp, _ := filepath.Glob(filepath.Join(root, ".config*")); len(tmp) > 0 {
		t.Errorf("temporary files left in the store: %v", tmp)
	}
	other := "dir:" + filepath.Join(t.TempDir(), "other")
	testNetworkAgreed(t, n2, "192.0.2.2", n1.store, other)
}

// testNetworkAgreed checks, on node n (nothing created, --store shared, whose
// network is the default one, recorded by another node's create), that:
// create with another VNI (against vniStore: the shared store in which the
// VNI is agreed), port, MTU or gateway is refused naming each difference,
// and leaves the node as it was; a node created against another store with
// another MTU is refused by attach and run against shared; and a node
// configured like the rest is accepted.
func testNetworkAgreed(t *testing.T, n *simNode, local, vniStore, other string) {
	t.Helper()
	n.store = vniStore
	before := n.snapshot()
	r := n.run("create", "--local", local, "--vni", "43")
	if r.code == 0 || !strings.Contains(r.stderr, "store VNI: want 43, have 42") {
		t.Errorf("create --vni 43: exit %d, want a refusal naming the VNI: %s", r.code, r.stderr)
	}
	if got := n.snapshot(); got != before {
		t.Errorf("refused create changed the node:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	n.store = strings.TrimSuffix(strings.TrimSuffix(vniStore, "?vni=42"), "&vni=42")
	before = n.snapshot()
	r = n.run("create", "--local", local, "--port", "4790", "--mtu", "1400", "--gateway", "198.51.100.1/25")
	for _, want := range []string{"store port: want 4790, have 4789", "store MTU: want 1400, have 1450",
		"store gateway: want 198.51.100.1/25, have 198.51.100.1/24", "agreed on in the store"} {
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("create with another port, MTU and gateway: exit %d, message lacks %q: %s", r.code, want, r.stderr)
		}
	}
	if got := n.snapshot(); got != before {
		t.Errorf("refused create changed the node:\nbefore:\n%s\nafter:\n%s", before, got)
	}

	// A node set up against another store, then pointed at the shared one.
	shared := n.store
	n.store = other
	n.ok("create", "--local", local, "--mtu", "1400")
	n.store = shared
	before = n.snapshot()
	r = n.run("attach", "c1", "--ip", "198.51.100.77/24")
	if r.code == 0 || !strings.Contains(r.stderr, "store MTU: want 1400, have 1450") {
		t.Errorf("attach on a node with another MTU: exit %d: %s", r.code, r.stderr)
	}
	if got := n.snapshot(); got != before {
		t.Errorf("refused attach changed the node:\nbefore:\n%s\nafter:\n%s", before, got)
	}
	r = n.run("run", "--mode", "reactive")
	if r.code == 0 || !strings.Contains(r.stderr, "store MTU: want 1400, have 1450") || !strings.Contains(r.stderr, "--state-dir") {
		t.Errorf("run with a state dir of another MTU: exit %d: %s", r.code, r.stderr)
	}
	n.store = other
	n.ok("reset")
	n.store = shared
	n.ok("create", "--local", local)
	n.ok("attach", "c1", "--ip", "198.51.100.77/24")
}
