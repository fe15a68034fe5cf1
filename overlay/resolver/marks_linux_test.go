package resolver

import (
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// TestProgrammerMarks shows the kernel behaviour ProtocolOverlayd's
// comment relies on, on a real vxlan device: NDA_PROTOCOL is stored and
// echoed for neighbour entries, but dropped by the vxlan driver for its FDB
// entries; so a restarted resolver adopts the neighbour entries marked with
// protocol 214 and the PERMANENT extern_learn FDB entries, and nothing else.
func TestProgrammerMarks(t *testing.T) {
	lab := newResolverLab(t)
	ours := lab.register(t, "198.51.100.60", "02:42:c6:33:64:3c", "192.0.2.3")
	theirs := lab.register(t, "198.51.100.61", "02:42:c6:33:64:3d", "192.0.2.3")
	put := func(m *rtnl.NeighMessage) {
		t.Helper()
		if err := lab.conn.NeighReplace(m); err != nil {
			t.Fatal(err)
		}
	}
	n := rtnl.ARPEntry{Ifindex: lab.vxlan, IP: ours.IP, MAC: ethaddr.MAC(ours.MAC)}.Message()
	n.Protocol = ProtocolOverlayd
	put(n)
	put(rtnl.ARPEntry{Ifindex: lab.vxlan, IP: theirs.IP, MAC: ethaddr.MAC(theirs.MAC)}.Message()) // no protocol
	f := rtnl.FDBEntry{Ifindex: lab.vxlan, MAC: ethaddr.MAC(ours.MAC), Dst: ours.VTEP, Flags: rtnl.NeighFlagExtLearned}.Message()
	f.Protocol = ProtocolOverlayd
	put(f)
	f = rtnl.FDBEntry{Ifindex: lab.vxlan, MAC: ethaddr.MAC(theirs.MAC), Dst: theirs.VTEP}.Message()
	f.Protocol = ProtocolOverlayd // asked for, but not stored
	put(f)

	protoOf := map[string]bool{}
	dump := func(family uint8) {
		t.Helper()
		err := lab.conn.NeighDump(rtnl.NeighFilter{Family: family, Ifindex: lab.vxlan}, func(m *rtnl.NeighMessage) error {
			if m.Ifindex != lab.vxlan {
				return nil
			}
			mac, _ := m.MAC()
			key := m.Dst.String() + " " + ethaddr.MAC(mac).String()
			protoOf[key] = m.Present.Has(rtnl.NeighAttrProtocol) && m.Protocol == ProtocolOverlayd
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	dump(unix.AF_INET)
	dump(unix.AF_BRIDGE)
	if !protoOf["198.51.100.60 02:42:c6:33:64:3c"] {
		t.Errorf("neighbour entry lost NDA_PROTOCOL: %v", protoOf)
	}
	for _, k := range []string{"192.0.2.3 02:42:c6:33:64:3c", "192.0.2.3 02:42:c6:33:64:3d"} {
		if v, ok := protoOf[k]; !ok || v {
			t.Errorf("FDB entry %s: present %v, NDA_PROTOCOL kept %v; want present without it (the vxlan driver drops it)", k, ok, v)
		}
	}

	r, _ := lab.start(t) // the first reconcile pass adopts
	eventually(t, "the adoption pass", func() bool { return r.Metrics().Snapshot().Reconciles >= 1 })
	var got []string
	for _, e := range r.Entries() {
		got = append(got, e.Table+" "+e.IP.String()+" "+e.MAC.String())
	}
	slices.Sort(got)
	want := []string{"fdb invalid IP 02:42:c6:33:64:3c", "neigh 198.51.100.60 02:42:c6:33:64:3c"}
	if !slices.Equal(got, want) {
		t.Errorf("adopted %q, want %q", got, want)
	}
}
