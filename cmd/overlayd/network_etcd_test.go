//go:build !noetcd

package main

import (
	"encoding/json"
	"testing"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestNetworkAgreedEtcdCLI is TestNetworkAgreedDirCLI on etcd: create
// publishes the network in PREFIX/vni/<VNI>/config, and a node configured
// differently is refused (the VNI by a store URL that names vni=42: without
// it, another VNI is another overlay, with keys of its own).
func TestNetworkAgreedEtcdCLI(t *testing.T) {
	lab := newEtcdLab(t, 2, "")
	kv, ok := lab.keys(t)["config"]
	if !ok {
		t.Fatal("create published no network in etcd")
	}
	var got registry.Network
	if err := json.Unmarshal([]byte(kv.Value), &got); err != nil || got != overlay.DefaultConfig().Network() || kv.Lease != 0 {
		t.Fatalf("config = %+v (%v), want %+v without lease", kv, err, overlay.DefaultConfig().Network())
	}
	n2 := lab.nodes[1]
	n2.ok("reset")
	testNetworkAgreed(t, n2, "192.0.2.3", lab.srv.URL("ovt", "vni=42"), lab.srv.URL("other", ""))
}
