package resolver

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// entryOrder follows a vxlan's neighbour and FDB tables from the kernel's
// own change notifications, in the order the kernel made the changes, and
// records every moment a neighbour entry pointed at a MAC with no FDB
// entry: the vxlan's proxy would then answer a container whose next frame
// the vxlan drops.
type entryOrder struct {
	vxlan int32

	mu     sync.Mutex
	fdb    map[string]string // MAC → VTEP
	neigh  map[string]string // IP → MAC
	counts map[string]int    // "neigh add", "neigh delete", "fdb add", "fdb delete"
	broken []string
}

// watchEntryOrder follows lab's vxlan until the test ends.
func watchEntryOrder(t *testing.T, lab *resolverLab) *entryOrder {
	t.Helper()
	mon, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: lab.ns, ChangesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	o := &entryOrder{vxlan: lab.vxlan, fdb: map[string]string{}, neigh: map[string]string{}, counts: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx, o.event) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("monitor: %v", err)
		}
		mon.Close()
	})
	return o
}

// answers are the states of the neighbour entries the vxlan's proxy
// answers from (NUD_CONNECTED).
const answers = rtnl.NeighPermanent | rtnl.NeighNoARP | rtnl.NeighReachable

func (o *entryOrder) event(ev *rtnl.Event) error {
	if ev.Kind == rtnl.EventOverrun { // notifications lost: the order can no longer be checked
		o.mu.Lock()
		o.broken = append(o.broken, "the watcher's monitor overran: notifications lost")
		o.mu.Unlock()
		return nil
	}
	m := &ev.Neigh
	// The bridge's own entries for its vxlan port (NTF_MASTER, learned
	// from the vxlan's extern_learn entries) are not the vxlan's.
	if ev.Kind == rtnl.EventMiss || m.Ifindex != o.vxlan || (m.Family == unix.AF_BRIDGE && m.Flags&rtnl.NeighFlagSelf == 0) {
		return nil
	}
	mac := net.HardwareAddr(m.LLAddr).String()
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case m.Family == unix.AF_BRIDGE && ev.Kind == rtnl.EventNeighAdd:
		o.fdb[mac] = m.Dst.String()
		o.counts["fdb add"]++
	case m.Family == unix.AF_BRIDGE:
		delete(o.fdb, mac)
		o.counts["fdb delete"]++
		for ip, to := range o.neigh {
			if to == mac {
				o.broken = append(o.broken, fmt.Sprintf("FDB entry of %s removed while the neighbour entry %s still points at it", mac, ip))
			}
		}
	case ev.Kind == rtnl.EventNeighAdd && m.State&answers != 0 && len(m.LLAddr) == 6:
		o.neigh[m.Dst.String()] = mac
		o.counts["neigh add"]++
		if _, ok := o.fdb[mac]; !ok {
			o.broken = append(o.broken, fmt.Sprintf("neighbour entry %s → %s in before its FDB entry", m.Dst, mac))
		}
	case ev.Kind == rtnl.EventNeighAdd: // an entry the proxy does not answer from
		delete(o.neigh, m.Dst.String())
	default:
		delete(o.neigh, m.Dst.String())
		o.counts["neigh delete"]++
	}
	return nil
}

// points says whether the neighbour entry ip points at mac, and mac's FDB
// entry at vtep ("" for no entry).
func (o *entryOrder) points(ip, mac, vtep string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if mac == "" {
		_, n := o.neigh[ip]
		return !n
	}
	return o.neigh[ip] == mac && o.fdb[mac] == vtep
}

// TestKernelFDBBeforeNeighbour: on a real vxlan, as the kernel orders its
// changes, no neighbour entry the resolver programs ever points at a MAC
// without an FDB entry — for a miss, a reconcile pass moving an IP to a new
// MAC and VTEP, a detached container's entries, and a feed's record put and
// deleted. (With the neighbour entry first, the proxy answers a container
// whose next frame, sent before the FDB entry is in, is dropped.)
func TestKernelFDBBeforeNeighbour(t *testing.T) {
	lab := newResolverLab(t)
	o := watchEntryOrder(t, lab)
	ctx := context.Background()

	// A miss.
	rec := lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	r, stop := lab.start(t)
	lab.ping("198.51.100.3")
	eventually(t, "the miss's entries", func() bool { return o.points("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3") })

	// The IP moves to another MAC on another node: a reconcile pass.
	if err := lab.store.Unregister(ctx, rec); err != nil {
		t.Fatal(err)
	}
	moved := lab.register(t, "198.51.100.3", "02:42:c6:33:64:13", "192.0.2.4")
	if _, err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the moved entries", func() bool { return o.points("198.51.100.3", "02:42:c6:33:64:13", "192.0.2.4") })

	// The container is detached: a reconcile pass removes both entries.
	if err := lab.store.Unregister(ctx, moved); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the entries removed", func() bool { return o.points("198.51.100.3", "", "") })
	stop()

	// A feed's record, programmed with no miss, then deleted.
	feed := make(chanFeed, 4)
	lab.startFeedResolver(t, feed, ModeProactive, 10)
	fed := lab.register(t, "198.51.100.5", "02:42:c6:33:64:05", "192.0.2.5")
	feed <- registry.Change{Kind: registry.ChangePut, Record: fed}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	eventually(t, "the feed's entries", func() bool { return o.points("198.51.100.5", "02:42:c6:33:64:05", "192.0.2.5") })
	if err := lab.store.Unregister(ctx, fed); err != nil {
		t.Fatal(err)
	}
	feed <- registry.Change{Kind: registry.ChangeDelete, Record: fed}
	eventually(t, "the feed's entries removed", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.neigh) == 0 && len(o.fdb) == 0
	})

	o.mu.Lock()
	defer o.mu.Unlock()
	// Three neighbour entries set and two removed, three FDB entries set
	// and three removed: the order was checked on every one of them.
	for what, least := range map[string]int{"neigh add": 3, "neigh delete": 2, "fdb add": 3, "fdb delete": 3} {
		if o.counts[what] < least {
			t.Errorf("%d %s notifications, want at least %d: %v", o.counts[what], what, least, o.counts)
		}
	}
	for _, b := range o.broken {
		t.Error(b)
	}
}
