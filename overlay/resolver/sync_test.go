package resolver

import (
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// dumpKernel is a dump socket whose neighbour dump lists entries and, in the
// middle of it, runs during (as programming going on meanwhile would).
type dumpKernel struct {
	fakeKernel
	neigh  map[netip.Addr]ethaddr.MAC
	proto  uint8
	during func()
}

func (k *dumpKernel) NeighDump(f rtnl.NeighFilter, fn func(*rtnl.NeighMessage) error) error {
	if f.Family != rtnl.FamilyInet {
		return nil
	}
	for ip, mac := range k.neigh {
		if k.during != nil {
			k.during()
			k.during = nil
		}
		m := &rtnl.NeighMessage{Family: rtnl.FamilyInet, Ifindex: testVxlan, Dst: ip, LLAddr: mac[:], Protocol: k.proto}
		m.Present |= 1 << rtnl.NeighAttrProtocol
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// TestSyncDumpsWhileProgramming: a reconcile pass dumping on a socket of its
// own lets programming go on, and what is programmed or removed during the
// dump is taken from the tracking, not from the (older) dump: an entry set
// meanwhile stays tracked though the dump missed it, one deleted meanwhile
// is not adopted again though the dump listed it; others are adopted.
func TestSyncDumpsWhileProgramming(t *testing.T) {
	r, _ := newTestResolver(t, newFakeRegistry(), &fakeKernel{}, nil)
	p := r.prog
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	mac := ethaddr.MAC{2, 0x42, 0, 0, 0, 1}
	set := func(a netip.Addr) progOp { return progOp{kind: opSetNeigh, ifindex: testVxlan, ip: a, mac: mac} }
	p.execute([]*resolution{{ops: []progOp{set(ip("198.51.100.7"))}}}) // tracked before the pass

	p.dump = &dumpKernel{proto: p.proto, neigh: map[netip.Addr]ethaddr.MAC{
		ip("198.51.100.5"): mac, // in the kernel, untracked: adopted
		ip("198.51.100.7"): mac, // deleted while the dump runs
	}, during: func() {
		p.execute([]*resolution{{ops: []progOp{
			set(ip("198.51.100.6")), // programmed while the dump runs, not in it
			{kind: opDelNeigh, ifindex: testVxlan, ip: ip("198.51.100.7"), mac: mac},
		}}})
	}}
	if _, _, err := p.sync(true); err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"198.51.100.5": true, "198.51.100.6": true, "198.51.100.7": false} {
		if _, got := p.trackedNeigh(testVxlan, ip(a)); got != want {
			t.Errorf("%s tracked = %v, want %v", a, got, want)
		}
	}
	if p.touchedNeigh != nil || p.touchedFDB != nil {
		t.Errorf("touched sets left after the pass")
	}
}
