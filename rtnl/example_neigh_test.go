package rtnl_test

import (
	"fmt"
	"log"
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

// Dial a Conn in a named network namespace (one `ip netns add overns`
// made) and program a container's ARP entry and the vxlan FDB entry that
// sends its MAC to the node at 192.0.2.3. It needs CAP_NET_ADMIN and the
// namespace; ExampleConn_NeighReplace runs the same requests on a fake.
func ExampleDial_namedNetNS() {
	ns, err := rtnl.OpenNamedNetNS(rtnl.DefaultNetNSDir, "overns")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	c, err := rtnl.Dial(&rtnl.Config{NetNS: ns}) // the socket stays in overns
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	vx, err := c.LinkByName("vxlan1")
	if err != nil {
		log.Fatal(err)
	}
	mac := ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x02}
	// ip neigh replace 198.51.100.2 lladdr 02:42:c6:33:64:02 dev vxlan1 nud permanent
	if err := c.NeighReplace(rtnl.ARPEntry{Ifindex: vx.Index,
		IP: netip.MustParseAddr("198.51.100.2"), MAC: mac}.Message()); err != nil {
		log.Fatal(err)
	}
	// bridge fdb replace 02:42:c6:33:64:02 dev vxlan1 self dst 192.0.2.3 vni 42 port 4789
	fdb := rtnl.FDBEntry{Ifindex: vx.Index, MAC: mac, Dst: netip.MustParseAddr("192.0.2.3"), VNI: 42, Port: rtnl.VxlanPort}
	if err := c.NeighReplace(fdb.Message()); err != nil {
		log.Fatal(err)
	}
}

// Program an ARP entry and a vxlan FDB entry with a remote VTEP, VNI and
// UDP port, here on the fake kernel of package rtnltest, which records the
// requests: what the kernel would receive is printed back.
func ExampleConn_NeighReplace() {
	c, fake := rtnltest.Dial(nil) // on a node: rtnl.Dial(&rtnl.Config{NetNS: ns})
	defer c.Close()

	const vxlan1 = 3 // ifindex of the vxlan device
	mac := ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x02}
	if err := c.NeighReplace(rtnl.ARPEntry{Ifindex: vxlan1,
		IP: netip.MustParseAddr("198.51.100.2"), MAC: mac}.Message()); err != nil {
		log.Fatal(err)
	}
	fdb := rtnl.FDBEntry{Ifindex: vxlan1, MAC: mac, Dst: netip.MustParseAddr("192.0.2.3"), VNI: 42, Port: rtnl.VxlanPort}
	if err := c.NeighReplace(fdb.Message()); err != nil {
		log.Fatal(err)
	}

	for _, req := range fake.Requests() {
		var m rtnl.NeighMessage
		if err := req.Decode(&m); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %v\n", req, &m)
	}
	// Output:
	// RTM_NEWNEIGH REQUEST|ACK|REPLACE|CREATE seq=1 len=32: 198.51.100.2 lladdr 02:42:c6:33:64:02 dev 3 PERMANENT
	// RTM_NEWNEIGH REQUEST|ACK|REPLACE|CREATE seq=2 len=48: 02:42:c6:33:64:02 dev 3 dst 192.0.2.3 port 4789 vni 42 PERMANENT self
}
