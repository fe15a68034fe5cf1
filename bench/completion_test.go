package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// completion watches the overlay namespace's RTNLGRP_NEIGH with its own
// rtnl.Monitor, apart from the resolver under test, and stamps the arrival of
// each target's neighbour entry and FDB entry (RTM_NEWNEIGH): an IP is
// resolved when both are in the kernel. It also checks their contents
// against the registry. Its monitor is ChangesOnly: the misses are none of
// its business, and a socket filter spares both implementations the cost of
// queueing every miss to it.
type completion struct {
	vxlan      int32
	neigh, fdb []int64 // UnixNano of arrival, 0 while absent
	neigh6     []bool  // the neighbour entry stamped in neigh is IPv6
	mu         sync.Mutex
	done       int // IPs with both entries
	wrong      []string
	overruns   int
	// completed receives the index of each IP once both its entries are in
	// (dropped when full: only one-at-a-time waiters read it).
	completed chan int
}

func (c *completion) handle(ev *rtnl.Event) error {
	if ev.Kind == rtnl.EventOverrun {
		c.mu.Lock()
		c.overruns++
		c.mu.Unlock()
		return nil
	}
	n := &ev.Neigh
	if ev.Kind != rtnl.EventNeighAdd || n.Ifindex != c.vxlan {
		return nil
	}
	now := time.Now().UnixNano()
	mac, hasMAC := n.MAC()
	var i int
	var ok bool
	var stamp []int64
	switch n.Family {
	case unix.AF_INET, unix.AF_INET6:
		if i, ok = ipIndex(n.Dst); !ok {
			return nil
		}
		stamp = c.neigh
		if !hasMAC || mac != resolveMAC(i) || n.State&rtnl.NeighPermanent == 0 {
			c.fail(fmt.Sprintf("neighbour %s: lladdr %s state %v, want %s PERMANENT", n.Dst, mac, n.State, resolveMAC(i)))
			return nil
		}
	case unix.AF_BRIDGE:
		if !hasMAC || n.Flags&rtnl.NeighFlagSelf == 0 {
			return nil
		}
		if i, ok = macIndex(mac); !ok {
			return nil
		}
		stamp = c.fdb
		if n.Dst != resolveVTEP(i) {
			c.fail(fmt.Sprintf("FDB %s: dst %s, want %s", mac, n.Dst, resolveVTEP(i)))
			return nil
		}
	default:
		return nil
	}
	if stamp[i] != 0 {
		return nil
	}
	stamp[i] = now
	if n.Family == unix.AF_INET6 {
		c.neigh6[i] = true
	}
	if c.neigh[i] != 0 && c.fdb[i] != 0 {
		c.mu.Lock()
		c.done++
		c.mu.Unlock()
		select {
		case c.completed <- i:
		default:
		}
	}
	return nil
}

func (c *completion) fail(msg string) {
	c.mu.Lock()
	if len(c.wrong) < 10 {
		c.wrong = append(c.wrong, msg)
	}
	c.mu.Unlock()
}

// resolved returns how many IPs have both entries so far.
func (c *completion) resolved() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// startCompletion runs a completion watcher on the vxlan device with
// ifindex vxlan in the overlay namespace ns until stop.
func startCompletion(tb testing.TB, ns *rtnl.NetNS, vxlan int32) (c *completion, stop func()) {
	c = &completion{vxlan: vxlan, neigh: make([]int64, registryN), fdb: make([]int64, registryN),
		neigh6: make([]bool, registryN), completed: make(chan int, 16)}
	m, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: ns, ReceiveBuffer: monitorBuffer, ChangesOnly: true})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		m.Run(ctx, c.handle)
	}()
	return c, func() { cancel(); <-finished; m.Close() }
}
