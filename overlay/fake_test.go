package overlay

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
	"golang.org/x/sys/unix"
)

// fakeNetNS is one network namespace of a fake kernel: its links, answered
// to RTM_GETLINK (by name or as a dump) and removed by RTM_DELLINK.
type fakeNetNS struct {
	mu      sync.Mutex
	links   []*rtnl.LinkMessage
	neigh   []*rtnl.NeighMessage  // the vxlan's entries, dumped by family
	delFail error                 // RTM_DELLINK's answer, if set
	trs     []*rtnltest.Transport // one per dial
}

// requests returns the requests of every connection dialled so far.
func (f *fakeNetNS) requests() []rtnltest.Request {
	var out []rtnltest.Request
	for _, tr := range f.trs {
		out = append(out, tr.Requests()...)
	}
	return out
}

func (f *fakeNetNS) handle(req rtnltest.Request) ([]rtnltest.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch req.Type() {
	case unix.RTM_GETLINK:
		if req.IsDump() {
			var out []rtnltest.Message
			for _, l := range f.links {
				out = append(out, rtnltest.Reply(unix.RTM_NEWLINK, l))
			}
			return out, nil
		}
		var m rtnl.LinkMessage
		if err := req.Decode(&m); err != nil {
			return nil, err
		}
		for _, l := range f.links {
			if (m.Name != "" && l.Name == m.Name) || (m.Name == "" && l.Index == m.Index) {
				return []rtnltest.Message{rtnltest.Reply(unix.RTM_NEWLINK, l)}, nil
			}
		}
		return nil, unix.ENODEV
	case unix.RTM_DELLINK:
		if f.delFail != nil {
			return nil, f.delFail
		}
		var m rtnl.LinkMessage
		if err := req.Decode(&m); err != nil {
			return nil, err
		}
		f.links = slices.DeleteFunc(f.links, func(l *rtnl.LinkMessage) bool { return l.Index == m.Index })
		return nil, nil
	case unix.RTM_GETADDR:
		return nil, nil
	case unix.RTM_GETNEIGH:
		var q rtnl.NeighMessage
		if err := req.Decode(&q); err != nil {
			return nil, err
		}
		var out []rtnltest.Message
		for _, n := range f.neigh {
			if n.Family == q.Family {
				out = append(out, rtnltest.Reply(unix.RTM_NEWNEIGH, n))
			}
		}
		return out, nil
	}
	return nil, unix.EOPNOTSUPP
}

// fakeNode is a Node whose namespaces are fake (no root): a missing name
// is a missing namespace.
type fakeNode struct {
	*Node
	ns map[string]*fakeNetNS
}

func newFakeNode(t *testing.T, reg registry.Registry) *fakeNode {
	t.Helper()
	fn := &fakeNode{Node: NewNode(NodeOptions{StateDir: t.TempDir(), NetNSDir: "/nonexistent", Registry: reg}), ns: map[string]*fakeNetNS{}}
	fn.dialer = func(name string) (*rtnl.Conn, error) {
		f := fn.ns[name]
		if f == nil {
			return nil, &os.PathError{Op: "open", Path: filepath.Join("/nonexistent", name), Err: os.ErrNotExist}
		}
		c, tr := rtnltest.Dial(f.handle)
		f.trs = append(f.trs, tr)
		return c, nil
	}
	return fn
}

var (
	fakeVTEP = netip.MustParseAddr("192.0.2.2")
	pinkMAC  = ethaddr.MAC{0x02, 0x42, 198, 51, 100, 2}
)

// fakeOverlay records the default overlay and endpoint pink, and fakes the
// namespaces Create and Attach would have made: br0 (3), vxlan1 (4) on it,
// ve-pink (5) on it, and eth0 (2) with pink's MAC in pink.
func fakeOverlay(t *testing.T, fn *fakeNode, createdNetNS bool) Endpoint {
	t.Helper()
	cfg := DefaultConfig()
	if err := fn.saveOverlayState(&overlayState{Overlay: Overlay{Config: cfg, VTEP: fakeVTEP}}); err != nil {
		t.Fatal(err)
	}
	ep := Endpoint{Name: "pink", IP: netip.MustParsePrefix("198.51.100.2/24"), MAC: pinkMAC, IfName: "eth0",
		HostIf: "ve-pink", HostIndex: 5, PeerIndex: 2, VTEP: fakeVTEP}
	if err := fn.saveEndpoint(&endpointState{Endpoint: ep, CreatedNetNS: createdNetNS, Registered: true}); err != nil {
		t.Fatal(err)
	}
	up := rtnl.LinkUp
	fn.ns["overns"] = &fakeNetNS{links: []*rtnl.LinkMessage{
		{Index: 3, Name: "br0", Flags: up, MTU: 1450, Info: &rtnl.LinkInfo{Kind: rtnl.KindBridge}},
		{Index: 4, Name: "vxlan1", Flags: up, MTU: 1450, Master: 3, Info: &rtnl.LinkInfo{Kind: rtnl.KindVxlan,
			Vxlan: &rtnl.VxlanInfo{ID: 42, Port: 4789, Proxy: true, L2Miss: true, L3Miss: true}}},
		{Index: 5, Name: "ve-pink", Flags: up, Master: 3, Link: 2, Info: &rtnl.LinkInfo{Kind: rtnl.KindVeth}},
	}}
	fn.ns["pink"] = &fakeNetNS{links: []*rtnl.LinkMessage{
		{Index: 2, Name: "eth0", Flags: up, Address: pinkMAC, Info: &rtnl.LinkInfo{Kind: rtnl.KindVeth}},
	}}
	return ep
}

// TestStatusFake: Status reads the devices, endpoints and the vxlan's
// entries back through the fake kernel (no root), and names each
// difference from what was recorded as a problem.
func TestStatusFake(t *testing.T) {
	fn := newFakeNode(t, nil)
	fakeOverlay(t, fn, true)
	remote := netip.MustParseAddr("198.51.100.9")
	fn.ns["overns"].neigh = []*rtnl.NeighMessage{
		rtnl.ARPEntry{Ifindex: 4, IP: remote, MAC: ethaddr.MAC{2, 0x42, 198, 51, 100, 9}}.Message(),
		rtnl.FDBEntry{Ifindex: 4, MAC: ethaddr.MAC{2, 0x42, 198, 51, 100, 9}, Dst: netip.MustParseAddr("192.0.2.3"), Flags: rtnl.NeighFlagExtLearned}.Message(),
	}
	st, err := fn.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Problems) != 0 || len(st.Endpoints) != 1 || len(st.Endpoints[0].Problems) != 0 {
		t.Fatalf("healthy overlay: problems %q, endpoints %+v", st.Problems, st.Endpoints)
	}
	if ep := st.Endpoints[0]; ep.HostIndex != 5 || ep.PeerIndex != 2 || ep.KernelPeerIndex != 2 || !ep.HostUp || !ep.PeerUp || ep.HostMaster != "br0" {
		t.Errorf("endpoint status %+v", ep)
	}
	if len(st.Devices) != 2 || st.Devices[1].VNI != 42 || st.Devices[1].Master != "br0" || !st.Devices[1].L3Miss {
		t.Errorf("devices %+v", st.Devices)
	}
	if len(st.Neighbors) != 1 || st.Neighbors[0].IP != remote || len(st.FDB) != 1 || st.FDB[0].VTEP != netip.MustParseAddr("192.0.2.3") {
		t.Errorf("entries: neighbours %+v, FDB %+v", st.Neighbors, st.FDB)
	}

	// Break things: the vxlan down and off the bridge, the container
	// interface with another MAC, then the container namespace gone.
	vx := fn.ns["overns"].links[1]
	vx.Flags, vx.Master = 0, 0
	fn.ns["pink"].links[0].Address = ethaddr.MAC{2, 0, 0, 0, 0, 1}
	st, err = fn.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"vxlan1 is not on bridge br0", "vxlan1 is down"} {
		if !slices.Contains(st.Problems, want) {
			t.Errorf("problems %q lack %q", st.Problems, want)
		}
	}
	if p := st.Endpoints[0].Problems; len(p) != 1 || !strings.Contains(p[0], "has MAC 02:00:00:00:00:01, want 02:42:c6:33:64:02") {
		t.Errorf("endpoint problems %q", p)
	}
	delete(fn.ns, "pink")
	delete(fn.ns, "overns")
	st, err = fn.Status(context.Background())
	if err != nil || len(st.Problems) != 1 || !strings.Contains(st.Problems[0], "overlay netns overns") ||
		!slices.Equal(st.Endpoints[0].Problems, []string{"overlay netns missing"}) {
		t.Errorf("overlay namespace gone: %v, problems %q, endpoint %+v", err, st.Problems, st.Endpoints)
	}
}

// TestDetachFake: Detach of an endpoint in a namespace it did not create
// deletes the host veth (by its index, after checking it is a veth) and
// the container's interface, unregisters the records and forgets the state;
// a kernel refusal keeps the state for a retry (what could be removed is
// removed: the container side goes in the first attempt). No root.
func TestDetachFake(t *testing.T) {
	store, err := dirstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	fn := newFakeNode(t, store)
	ep := fakeOverlay(t, fn, false)
	for _, rec := range ep.Records() {
		if err := store.Register(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}

	fn.ns["overns"].delFail = &rtnltest.Error{Errno: unix.EPERM, Message: "not allowed"}
	err = fn.Detach(context.Background(), "pink")
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "delete ve-pink") {
		t.Fatalf("Detach with the kernel refusing: %v", err)
	}
	if _, err := fn.loadEndpoint("pink"); err != nil {
		t.Errorf("state forgotten after a failed detach: %v", err)
	}

	fn.ns["overns"].delFail = nil
	if err := fn.Detach(context.Background(), "pink"); err != nil {
		t.Fatal(err)
	}
	// ve-pink: refused, then deleted; eth0: deleted in the first attempt.
	for name, want := range map[string][]int32{"overns": {5, 5}, "pink": {2}} {
		var dels []int32
		for _, r := range fn.ns[name].requests() {
			if r.Type() == unix.RTM_DELLINK {
				var m rtnl.LinkMessage
				if err := r.Decode(&m); err != nil {
					t.Fatal(err)
				}
				dels = append(dels, m.Index)
			}
		}
		if !slices.Equal(dels, want) {
			t.Errorf("%s: RTM_DELLINK of %v, want %v", name, dels, want)
		}
	}
	if _, err := store.LookupMAC(context.Background(), ep.IP.Addr()); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("record after detach: %v", err)
	}
	if _, err := fn.loadEndpoint("pink"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("state after detach: %v", err)
	}
}
