package rtnl_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os/signal"
	"syscall"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

// Read misses as a vxlan device with l2miss and l3miss raises them, here
// from the fake kernel of package rtnltest, which delivers scripted
// notifications: an L3 miss, a neighbour change (which MonitorMisses drops,
// as the socket filter does on a node), a receive-buffer overflow, an L2
// miss. On a node, DialMonitor opens the socket instead and Run runs until
// interrupted (ExampleMonitor_namedNetNS).
func ExampleMonitor() {
	kernel := rtnltest.NewNotifier()
	const vxlan1 = 3 // ifindex of the vxlan device
	kernel.Notify(rtnltest.Reply(rtnl.MsgGetNeigh, &rtnl.NeighMessage{Family: rtnl.FamilyInet,
		Ifindex: vxlan1, State: rtnl.NeighStale, Dst: netip.MustParseAddr("198.51.100.9")}))
	kernel.Notify(rtnltest.Reply(rtnl.MsgNewNeigh, rtnl.ARPEntry{Ifindex: vxlan1,
		IP: netip.MustParseAddr("198.51.100.9"), MAC: ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x09}}.Message()))
	kernel.Overrun()
	kernel.Notify(rtnltest.Reply(rtnl.MsgGetNeigh, &rtnl.NeighMessage{Family: rtnl.FamilyInet,
		Ifindex: vxlan1, State: rtnl.NeighStale, LLAddr: []byte{0x02, 0x42, 0xc6, 0x33, 0x64, 0x07}}))
	kernel.End() // Run returns nil once all is delivered

	m := rtnl.NewMonitor(kernel, rtnl.MonitorMisses)
	defer m.Close()
	err := m.Run(context.Background(), func(ev *rtnl.Event) error {
		switch {
		case ev.Kind == rtnl.EventOverrun:
			// Notifications were lost: dump the tables again (Monitor.Resync).
			fmt.Println("overrun")
		case ev.Miss.Kind == rtnl.MissL3:
			fmt.Printf("dev %d: who has %v?\n", ev.Miss.Ifindex, ev.Miss.IP)
		case ev.Miss.Kind == rtnl.MissL2:
			fmt.Printf("dev %d: where is %v?\n", ev.Miss.Ifindex, rtnl.HardwareAddr(ev.Miss.MAC[:]))
		}
		return nil // ev is reused: copy what must outlive the callback
	})
	if err != nil {
		log.Fatal(err)
	}
	st := m.Stats()
	fmt.Println(st.Misses(), "misses,", st.Overruns, "overrun")
	// Output:
	// dev 3: who has 198.51.100.9?
	// overrun
	// dev 3: where is 02:42:c6:33:64:07?
	// 2 misses, 1 overrun
}

// Read the L2 and L3 misses of the vxlan devices in the namespace overns
// until interrupted. It needs CAP_NET_ADMIN and the namespace; ExampleMonitor
// reads the same kind of notifications from the fake kernel of package
// rtnltest.
func ExampleMonitor_namedNetNS() {
	ns, err := rtnl.OpenNamedNetNS(rtnl.DefaultNetNSDir, "overns")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	m, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: ns, MissesOnly: true})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = m.Run(ctx, func(ev *rtnl.Event) error {
		switch {
		case ev.Kind == rtnl.EventOverrun:
			// Notifications were lost: dump the tables again (Monitor.Resync).
			fmt.Println("overrun")
		case ev.Miss.Kind == rtnl.MissL3:
			fmt.Printf("dev %d: who has %v?\n", ev.Miss.Ifindex, ev.Miss.IP)
		case ev.Miss.Kind == rtnl.MissL2:
			fmt.Printf("dev %d: where is %v?\n", ev.Miss.Ifindex, rtnl.HardwareAddr(ev.Miss.MAC[:]))
		}
		return nil // ev is reused: copy what must outlive the callback
	})
	if err != nil && ctx.Err() == nil {
		log.Fatal(err)
	}
}

// Classify a neighbour notification as a Monitor reads it from its socket:
// here an L3 miss as a vxlan device with l3miss sends it (RTM_GETNEIGH, no
// NLM_F_REQUEST, NDA_DST and state STALE). Decoding a miss does not
// allocate.
func ExampleClassify() {
	// The notification, built here as the kernel frames it (host byte order).
	miss := &rtnl.NeighMessage{Family: rtnl.FamilyInet, Ifindex: 3, State: rtnl.NeighStale,
		Dst: netip.MustParseAddr("198.51.100.7")}
	body, err := miss.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	msg := rtnl.AppendHeader(nil, rtnl.Header{Length: uint32(rtnl.HeaderLen + len(body)), Type: rtnl.MsgGetNeigh})
	msg = append(msg, body...)

	var ev rtnl.Event
	ok, err := rtnl.Classify(msg, &ev)
	if err != nil || !ok {
		log.Fatal(ok, err)
	}
	fmt.Println(ev.Kind, ev.Miss.Kind, ev.Miss.Ifindex, ev.Miss.IP, ev.Miss.State)
	// Output:
	// miss l3miss 3 198.51.100.7 STALE
}
