package rtnl_test

import (
	"fmt"
	"log"

	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

// Create a vxlan device as `ip link add vxlan1 mtu 1450 type vxlan id 42
// dstport 4789 proxy l2miss l3miss nolearning` does, here on the fake
// kernel of package rtnltest, and print the request it received. On a
// node, set NetNSFD on the message to create the device in another
// namespace while its UDP socket stays in the caller's.
func ExampleNewVxlan() {
	c, fake := rtnltest.Dial(nil) // on a node: rtnl.Dial(nil), as root
	defer c.Close()

	vx := rtnl.NewVxlan("vxlan1", rtnl.VxlanInfo{
		ID: 42, Port: rtnl.VxlanPort, Proxy: true, L2Miss: true, L3Miss: true,
	})
	vx.MTU = 1450
	if err := c.LinkAdd(vx); err != nil {
		log.Fatal(err)
	}

	req := fake.Requests()[0]
	var got rtnl.LinkMessage
	if err := req.Decode(&got); err != nil {
		log.Fatal(err)
	}
	v := got.Info.Vxlan
	fmt.Println(req)
	fmt.Println(got.Name, got.Kind(), "mtu", got.MTU)
	fmt.Println("id", v.ID, "dstport", v.Port, "proxy", v.Proxy, "l2miss", v.L2Miss, "l3miss", v.L3Miss, "learning", v.Learning)
	// Output:
	// RTM_NEWLINK REQUEST|ACK|EXCL|CREATE seq=1 len=104
	// vxlan1 vxlan mtu 1450
	// id 42 dstport 4789 proxy true l2miss true l3miss true learning false
}
