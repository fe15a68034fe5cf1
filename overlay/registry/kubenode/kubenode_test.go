package kubenode

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

func testState() State {
	return State{Node: "node1", VTEP: netip.MustParseAddr("192.0.2.10"), PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")},
		Network: registry.Network{VNI: 42, Port: 4789, MTU: 1450, Gateway: netip.MustParsePrefix("10.244.0.1/16")}}
}

// TestStore: before the daemon recorded anything, the view answers
// "unavailable" (retryable) where it needs the state, and no network;
// once recorded, this node's addresses have derived MACs at its VTEP,
// others are unknown, a record every node would derive is accepted and
// nothing written, any other refused; the blocks are the podCIDRs, or why
// there are none, naming the fix. Write leaves no temporary file.
func TestStore(t *testing.T) {
	dir := t.TempDir()
	s := New(dir)
	ctx := context.Background()
	if _, err := s.AssignedBlocks(ctx); !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, ErrNotRecorded) {
		t.Errorf("blocks before the record: %v, want ErrNotRecorded, unavailable", err)
	}
	if _, err := s.Network(ctx); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("network before the record: %v, want not found", err)
	}
	if err := s.PublishNetwork(ctx, testState().Network); err != nil {
		t.Errorf("publish before the record: %v, want nothing to compare with", err)
	}
	if err := Write(dir, testState()); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != FileName {
		t.Errorf("state directory holds %v, want %s alone", ents, FileName)
	}
	ip := netip.MustParseAddr("10.244.1.5")
	if mac, err := s.LookupMAC(ctx, ip); err != nil || mac != registry.DeriveMAC(ip) {
		t.Errorf("LookupMAC(%s) = %s, %v", ip, mac, err)
	}
	if vtep, err := s.LookupVTEP(ctx, registry.DeriveMAC(ip)); err != nil || vtep != testState().VTEP {
		t.Errorf("LookupVTEP = %s, %v", vtep, err)
	}
	if _, err := s.LookupMAC(ctx, netip.MustParseAddr("10.244.2.5")); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("another node's address: %v, want not found", err)
	}
	rec := registry.Record{IP: ip, MAC: registry.DeriveMAC(ip), VTEP: testState().VTEP}
	if err := s.Register(ctx, rec); err != nil {
		t.Errorf("Register(%v): %v", rec, err)
	}
	for _, bad := range []registry.Record{
		{IP: netip.MustParseAddr("10.244.2.5"), MAC: registry.DeriveMAC(netip.MustParseAddr("10.244.2.5")), VTEP: rec.VTEP},
		{IP: ip, MAC: registry.DeriveMAC(netip.MustParseAddr("10.244.1.6")), VTEP: rec.VTEP},
		{IP: ip, MAC: rec.MAC, VTEP: netip.MustParseAddr("192.0.2.11")},
	} {
		if err := s.Register(ctx, bad); !errors.Is(err, registry.ErrConflict) {
			t.Errorf("Register(%v) = %v, want a conflict", bad, err)
		}
	}
	if other := (registry.Network{VNI: 43, Port: 4789, MTU: 1450, Gateway: testState().Network.Gateway}); s.PublishNetwork(ctx, other) == nil {
		t.Errorf("another network was accepted")
	}
	if b, err := s.AssignedBlocks(ctx); err != nil || len(b) != 1 || b[0] != testState().PodCIDRs[0] {
		t.Errorf("blocks %v, %v", b, err)
	}
	none := testState()
	none.PodCIDRs = nil
	if err := Write(dir, none); err != nil {
		t.Fatal(err)
	}
	_, err := s.AssignedBlocks(ctx)
	if !errors.Is(err, ErrNoPodCIDR) || !errors.Is(err, registry.ErrUnavailable) {
		t.Errorf("blocks without a podCIDR: %v, want ErrNoPodCIDR, unavailable", err)
	}
	for _, fix := range []string{`Node "node1"`, "--allocate-node-cidrs", "--cluster-cidr=10.244.0.0/16", "spec.podCIDR"} {
		if err == nil || !strings.Contains(err.Error(), fix) {
			t.Errorf("the error %q does not name %q", err, fix)
		}
	}
	if err := Remove(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, FileName)); !errors.Is(err, os.ErrNotExist) || Remove(dir) != nil {
		t.Errorf("after Remove: %v", err)
	}
}
