package missgen_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestNS: the generator's Neighbor Solicitations raise one IPv6 L3 miss
// each on a dual-stack lab's vxlan (AF_INET6, the target as NDA_DST), none
// for anything else (no stray link-local or DAD miss), and are valid
// solicitations: br0, holding the address asked for, takes one (its
// checksum and options checked by the kernel) and learns the sender.
func TestNS(t *testing.T) {
	nstest.RequireRoot(t)
	lab := missgen.NewDualLab(t)
	g := lab.Generator6(t)
	m, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: lab.Overlay, MissesOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var mu sync.Mutex
	var misses []rtnl.Miss
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, func(ev *rtnl.Event) error {
			if ev.Kind == rtnl.EventMiss {
				mu.Lock()
				misses = append(misses, ev.Miss)
				mu.Unlock()
			}
			return nil
		})
	}()
	defer func() { cancel(); <-done }()
	if n, err := g.NS(missgen.FirstTarget6(), 3); err != nil || n != 3 {
		t.Fatalf("NS: %d, %v", n, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		got := len(misses)
		mu.Unlock()
		if got >= 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // nothing else follows
	mu.Lock()
	defer mu.Unlock()
	if len(misses) != 3 {
		t.Fatalf("%d misses, want 3: %+v", len(misses), misses)
	}
	for i, ms := range misses {
		want := missgen.AddrAt(missgen.FirstTarget6(), i)
		if ms.Kind != rtnl.MissL3 || ms.Family != rtnl.FamilyInet6 || ms.IP != want || ms.Ifindex != lab.VxlanIndex {
			t.Errorf("miss %d: %+v, want an IPv6 L3 miss for %s on vxlan1", i, ms, want)
		}
	}

	// br0 joins the address's solicited-node group from a work queue,
	// after the address is added: the solicitation is sent until taken.
	nstest.Run(t, lab.OverlayName, "ip", "addr", "add", "2001:db8:40::1/64", "dev", "br0", "nodad")
	var out string
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if n, err := g.NS(missgen.Prefix6().Addr().Next(), 1); err != nil || n != 1 {
			t.Fatalf("NS for br0's address: %d, %v", n, err)
		}
		out = nstest.Run(t, lab.OverlayName, "ip", "-6", "neigh", "show", "dev", "br0")
		if strings.Contains(out, missgen.ContainerIP6().String()+" lladdr "+missgen.ContainerMAC().String()) {
			return
		}
	}
	t.Errorf("br0 did not take the solicitation (no entry for its sender):\n%s", out)
}
