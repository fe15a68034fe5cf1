package rtnl_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"os/signal"
	"syscall"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// Read the L2 and L3 misses of the vxlan devices in the namespace overns
// until interrupted. It needs CAP_NET_ADMIN and the namespace; ExampleClassify
// decodes the same notifications without a socket.
func ExampleMonitor() {
	ns, err := rtnl.OpenNamedNetNS(rtnl.DefaultNetNSDir, "overns")
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Close()
	m, err := rtnl.NewMonitor(rtnl.MonitorConfig{NetNS: ns, MissesOnly: true})
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
			fmt.Printf("dev %d: where is %v?\n", ev.Miss.Ifindex, ev.Miss.MAC)
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
	miss := &rtnl.NeighMessage{Family: unix.AF_INET, Ifindex: 3, State: rtnl.NeighStale,
		Dst: netip.MustParseAddr("198.51.100.7")}
	body, err := miss.MarshalBinary()
	if err != nil {
		log.Fatal(err)
	}
	msg := rtnl.AppendHeader(nil, rtnl.Header{Length: uint32(rtnl.HeaderLen + len(body)), Type: unix.RTM_GETNEIGH})
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
