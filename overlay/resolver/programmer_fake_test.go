package resolver

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

// TestProgrammerRequests runs the resolver on an rtnl.Conn over the fake
// transport (no root): an L3 miss becomes, in one datagram, a PERMANENT
// neighbour replace marked with ProtocolOverlayd and a PERMANENT
// self+extern_learn FDB replace carrying the VNI and port; a kernel failure
// of the FDB request alone is reported with the kernel's message, and only
// the neighbour entry is tracked.
func TestProgrammerRequests(t *testing.T) {
	for _, failFDB := range []bool{false, true} {
		name := "ok"
		if failFDB {
			name = "fdb refused"
		}
		t.Run(name, func(t *testing.T) {
			handler := func(req rtnltest.Request) ([]rtnltest.Message, error) {
				if req.Type() != rtnl.MsgNewNeigh {
					return nil, nil // dumps of the adoption pass: empty
				}
				var m rtnl.NeighMessage
				if err := req.Decode(&m); err != nil {
					return nil, err
				}
				if failFDB && m.Family == rtnl.FamilyBridge {
					return nil, &rtnltest.Error{Errno: syscall.EINVAL, Message: "vxlan: bad remote"}
				}
				return nil, nil
			}
			conn, tr := rtnltest.Dial(handler)
			defer conn.Close()
			reg := newFakeRegistry()
			reg.add("198.51.100.3", macN(3), "192.0.2.3")
			r, logs := newTestResolver(t, reg, nil, func(c *testConfig) { c.kernel = nil; c.Conn = conn })
			runResolver(t, r)
			tr.Reset()
			r.HandleMiss(l3("198.51.100.3"))
			eventually(t, "the resolution's report", func() bool {
				s := r.Metrics().Snapshot()
				return s.Resolutions["l3miss"]+s.Errors >= 1
			})

			var neigh, fdb []rtnl.NeighMessage
			var datagrams []int
			for _, req := range tr.Requests() {
				if req.Type() != rtnl.MsgNewNeigh {
					continue
				}
				var m rtnl.NeighMessage
				if err := req.Decode(&m); err != nil {
					t.Fatal(err)
				}
				if req.Flags()&(rtnl.FlagReplace|rtnl.FlagCreate) != rtnl.FlagReplace|rtnl.FlagCreate {
					t.Errorf("%v: want REPLACE|CREATE", req)
				}
				datagrams = append(datagrams, req.Datagram)
				if m.Family == rtnl.FamilyBridge {
					fdb = append(fdb, m)
				} else {
					neigh = append(neigh, m)
				}
			}
			if len(neigh) != 1 || len(fdb) != 1 || datagrams[0] != datagrams[1] {
				t.Fatalf("neighbour requests %+v, FDB requests %+v in datagrams %v; want one of each in one datagram", neigh, fdb, datagrams)
			}
			n, f := neigh[0], fdb[0]
			if mac, _ := n.MAC(); n.Ifindex != testVxlan || n.Dst != netip.MustParseAddr("198.51.100.3") || mac != ethaddr.MAC(macN(3)) ||
				n.State != rtnl.NeighPermanent || !n.Present.Has(rtnl.NeighAttrProtocol) || n.Protocol != ProtocolOverlayd {
				t.Errorf("neighbour request %+v", n)
			}
			if mac, _ := f.MAC(); f.Ifindex != testVxlan || f.Dst != netip.MustParseAddr("192.0.2.3") || mac != ethaddr.MAC(macN(3)) ||
				f.State != rtnl.NeighPermanent || f.Flags != rtnl.NeighFlagSelf|rtnl.NeighFlagExtLearned || f.VNI != 42 || f.Port != 4789 {
				t.Errorf("FDB request %+v", f)
			}
			ents := r.Entries()
			if !failFDB {
				if len(ents) != 2 || r.Metrics().Snapshot().Resolutions["l3miss"] != 1 {
					t.Errorf("tracked %+v, metrics %+v", ents, r.Metrics().Snapshot())
				}
				return
			}
			if len(ents) != 1 || ents[0].Table != "neigh" || r.Metrics().Snapshot().Resolutions["l3miss"] != 0 {
				t.Errorf("tracked %+v, want only the neighbour entry; metrics %+v", ents, r.Metrics().Snapshot())
			}
			eventually(t, "the failure's log line", func() bool { return strings.Contains(logs.String(), "vxlan: bad remote") })
		})
	}
}
