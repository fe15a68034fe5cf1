package overlay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestAttachAllocates attaches containers without an address on two nodes
// sharing a store: each node claims its own block and hands out its
// addresses in order; an explicit address is honoured if free and refused
// if taken; detach releases the address (and the block with its last one);
// status shows the blocks; reset releases everything.
func TestAttachAllocates(t *testing.T) {
	store := newTestStore(t)
	n1 := newTestNode(t, "al", netip.Prefix{}, store)
	n2 := newTestNode(t, "am", netip.Prefix{}, store)
	joinUnderlay(t, n1, n2, netip.MustParsePrefix("192.0.2.2/24"), netip.MustParsePrefix("192.0.2.3/24"))
	n1.mustCreate(testConfig("192.0.2.2"))
	n2.mustCreate(testConfig("192.0.2.3"))

	a1 := n1.mustAttach(AttachRequest{Name: "a"})
	b2 := n2.mustAttach(AttachRequest{Name: "b"})
	a2 := n1.mustAttach(AttachRequest{Name: "a2"})
	if a1.IP.String() != "198.51.100.2/24" || a2.IP.String() != "198.51.100.3/24" || b2.IP.String() != "198.51.100.64/24" {
		t.Fatalf("allocated %s, %s on node 1 and %s on node 2; want .2, .3 and .64 (the next /26 block)", a1.IP, a2.IP, b2.IP)
	}
	if a1.MAC.String() != "02:42:c6:33:64:02" {
		t.Errorf("MAC of an allocated address: %s, want the derived 02:42:c6:33:64:02", a1.MAC)
	}
	// Explicit: free → honoured; taken on the other node → refused.
	if ep := n1.mustAttach(AttachRequest{Name: "x", IP: netip.MustParsePrefix("198.51.100.100/24")}); ep.IP.Addr() != netip.MustParseAddr("198.51.100.100") {
		t.Fatalf("explicit address: %s", ep.IP)
	}
	if _, err := n1.attach(AttachRequest{Name: "y", IP: netip.MustParsePrefix("198.51.100.64/24")}); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("explicit address of a container on node 2: %v, want ErrConflict", err)
	}
	if _, err := n1.attach(AttachRequest{Name: "y", IP: netip.MustParsePrefix("198.51.100.2/24")}); !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("explicit address of a container on this node: %v, want ErrConflict", err)
	}
	st, err := n1.status()
	if err != nil {
		t.Fatal(err)
	}
	want := []ipam.BlockUsage{{Block: netip.MustParsePrefix("198.51.100.0/26"), Size: 62, Used: 2}}
	if fmt.Sprint(st.Blocks) != fmt.Sprint(want) {
		t.Errorf("status blocks %v, want %v", st.Blocks, want)
	}
	// Detach releases: the next allocation gets .2 again.
	if err := n1.detach("a"); err != nil {
		t.Fatal(err)
	}
	if ep := n1.mustAttach(AttachRequest{Name: "c"}); ep.IP.Addr() != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("after detach: %s, want .2 again", ep.IP)
	}
	// Node 2's block goes with its last container.
	if err := n2.detach("b"); err != nil {
		t.Fatal(err)
	}
	blocks, _ := store.Blocks(context.Background())
	if len(blocks) != 1 {
		t.Errorf("blocks after node 2's last detach: %v", blocks)
	}
	for _, n := range []*testNode{n1, n2} {
		if err := n.reset(); err != nil {
			t.Fatal(err)
		}
		if files := n.stateFiles(); len(files) != 0 {
			t.Errorf("state after reset: %v", files)
		}
		if _, err := os.Stat(filepath.Join(n.stateDir, ipamDir)); !os.IsNotExist(err) {
			t.Errorf("allocation directory after reset: %v", err)
		}
	}
	if files := storeFiles(t, store); len(files) != 0 {
		t.Errorf("store after reset: %v", files)
	}
}

// A registry without blocks: no address is an error, an explicit one works.
func TestAttachWithoutBlocks(t *testing.T) {
	tn := newTestNode(t, "ab", testUnderlay, nil)
	tn.node = NewNode(NodeOptions{NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Registry: noBlocks{tn.store}, Logger: nodeTestLogger(t)})
	tn.mustCreate(testConfig("192.0.2.2"))
	if _, err := tn.attach(AttachRequest{Name: "a"}); !errors.Is(err, ErrNoBlocks) {
		t.Fatalf("attach without address: %v, want ErrNoBlocks", err)
	}
	tn.mustAttach(AttachRequest{Name: "a", IP: netip.MustParsePrefix("198.51.100.9/24")})
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
}

// noBlocks hides a registry's block methods.
type noBlocks struct{ registry.Registry }

// 32 attaches at once through separate Nodes on one state directory (as
// separate processes would): 32 distinct addresses, every endpoint recorded.
func TestParallelAttach(t *testing.T) {
	tn := newTestNode(t, "ap", testUnderlay, nil)
	tn.mustCreate(testConfig("192.0.2.2"))
	const n = 32
	eps := make([]*Endpoint, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := NewNode(NodeOptions{NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Registry: tn.store})
			errs[i] = tn.do(func() (err error) {
				eps[i], err = node.Attach(context.Background(), AttachRequest{Name: fmt.Sprintf("p%d", i)})
				return err
			})
		}()
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("attach p%d: %v", i, errs[i])
		}
		if prev, dup := seen[eps[i].IP.Addr()]; dup {
			t.Fatalf("p%d and %s both got %s", i, prev, eps[i].IP)
		}
		seen[eps[i].IP.Addr()] = eps[i].Name
	}
	got, err := tn.node.Endpoints()
	if err != nil || len(got) != n {
		t.Fatalf("%d endpoints recorded, %v; want %d", len(got), err, n)
	}
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
	if files := storeFiles(t, tn.store); len(files) != 0 {
		t.Errorf("store after reset: %v", files)
	}
}
