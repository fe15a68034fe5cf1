package rtnl_test

import (
	"errors"
	"fmt"
	"log"
	"net/netip"
	"syscall"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

// Send many requests in one batch: ExecuteBatch packs them into as few
// sendmsg calls as fit and reports each failed request by its index in a
// *rtnl.BatchError; the others are applied. Here the fake kernel of
// package rtnltest refuses the second entry (its device is gone) and the
// fourth (it exists).
func ExampleConn_ExecuteBatch() {
	refuse := map[netip.Addr]error{
		netip.MustParseAddr("198.51.100.3"): &rtnltest.Error{Errno: syscall.ENODEV, Message: "No such device"},
		netip.MustParseAddr("198.51.100.5"): syscall.EEXIST,
	}
	c, fake := rtnltest.Dial(func(req rtnltest.Request) ([]rtnltest.Message, error) {
		var m rtnl.NeighMessage
		if err := req.Decode(&m); err != nil {
			return nil, err
		}
		return nil, refuse[m.Dst]
	})
	defer c.Close()

	var b rtnl.Batch
	for i := 2; i <= 5; i++ {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if err := b.NeighAdd(rtnl.ARPEntry{Ifindex: 3,
			IP: ip, MAC: ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, byte(i)}}.Message()); err != nil {
			log.Fatal(err)
		}
	}
	err := c.ExecuteBatch(&b)
	var be *rtnl.BatchError
	if !errors.As(err, &be) {
		log.Fatalf("want a BatchError, got %v", err)
	}
	fmt.Printf("%d of %d failed\n", len(be.Failures), be.Total)
	for _, f := range be.Failures {
		fmt.Printf("request %d: %v\n", f.Index, f.Err)
	}
	fmt.Println("any EEXIST:", errors.Is(err, syscall.EEXIST))
	fmt.Println("sendmsg calls:", fake.Datagrams())
	// Output:
	// 2 of 4 failed
	// request 1: rtnl: RTM_NEWNEIGH: no such device: No such device
	// request 3: rtnl: RTM_NEWNEIGH: file exists
	// any EEXIST: true
	// sendmsg calls: 1
}
