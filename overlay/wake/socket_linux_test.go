package wake

import (
	"context"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/rtnl"
)

// remoteMAC is the MAC the tests' remote target has.
var remoteMAC = ethaddr.MAC{0x02, 0x42, 0x0b, 0, 0, 7}

// familyLab is an overlay namespace (br0, a proxy vxlan1 with l3miss, a
// container port) and a container, for one address family.
type familyLab struct {
	overlay, container         *rtnl.NetNS
	overlayName, containerName string
	vxlan                      int32
	target                     netip.Addr // an address on the overlay no one has
}

// ipv4Lab is missgen's lab (IPv6 off in both namespaces).
func ipv4Lab(t *testing.T) *familyLab {
	l := missgen.NewLab(t)
	return &familyLab{overlay: l.Overlay, container: l.Container, overlayName: l.OverlayName,
		containerName: l.ContainerName, vxlan: l.VxlanIndex, target: missgen.FirstTarget()}
}

// ipv6Lab is the same with IPv6 on: the container is fd00::2/64, nodad;
// br0, vxlan1 and the port have no link-local addresses (addrgenmode none),
// so that no DAD probe raises stray misses.
func ipv6Lab(t *testing.T) *familyLab {
	o, on := nstest.NetNS(t, "wo")
	c, cn := nstest.NetNS(t, "wc")
	nstest.Run(t, on, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	nstest.Run(t, on, "ip", "link", "add", "vxlan1", "type", "vxlan", "id", "42", "dstport", "4789",
		"proxy", "l2miss", "l3miss", "nolearning")
	nstest.Run(t, on, "ip", "link", "add", "veth1", "type", "veth", "peer", "name", "eth0", "netns", cn)
	for _, dev := range []string{"br0", "vxlan1", "veth1"} {
		nstest.Run(t, on, "ip", "link", "set", dev, "addrgenmode", "none")
		if dev != "br0" {
			nstest.Run(t, on, "ip", "link", "set", dev, "master", "br0")
		}
		nstest.Run(t, on, "ip", "link", "set", dev, "up")
	}
	nstest.Run(t, cn, "ip", "link", "set", "eth0", "addrgenmode", "none")
	nstest.Run(t, cn, "ip", "addr", "add", "fd00::2/64", "dev", "eth0", "nodad")
	nstest.Run(t, cn, "ip", "link", "set", "eth0", "up")
	return &familyLab{overlay: o, container: c, overlayName: on, containerName: cn,
		vxlan: missgen.Ifindex(t, on, "vxlan1"), target: netip.MustParseAddr("fd00::7")}
}

// openWaker opens a Waker on the lab's vxlan, closed when the test ends; it
// does not run: only Answer reads what is captured.
func openWaker(t *testing.T, l *familyLab) *Waker {
	link, err := Open(l.overlay, l.vxlan)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { link.Close() })
	return New(link, Config{})
}

// waitForwarding waits until the bridge port veth1 of the lab forwards: a
// port comes up when the kernel's link watcher gets to it, up to a second
// after its carrier, and drops frames until then.
func waitForwarding(t *testing.T, l *familyLab) {
	t.Helper()
	var out string
	if !waitFor(3*time.Second, func() bool {
		out, _ = nstest.Output(l.overlayName, "bridge", "link", "show", "dev", "veth1")
		return strings.Contains(out, "state forwarding")
	}) {
		t.Fatalf("bridge port veth1 not forwarding after 3 s: %s", out)
	}
}

// startWaker is openWaker running until the test ends (it reads on its own
// once a second).
func startWaker(t *testing.T, l *familyLab) *Waker {
	w := openWaker(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

// waitFor polls cond every millisecond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// TestAnswerWakesTheRequester: a container pings an address of the overlay
// no one has an entry for; its request is captured on the way to the
// vxlan, where it waits unread; once the neighbour entry is programmed,
// Answer reads it and sends it again, and the vxlan proxy answers at once:
// the container's neighbour entry is REACHABLE with the right MAC well
// before its own retransmit (1 s). A second Answer sends nothing (once per
// request). For IPv4 (ARP) and IPv6 (Neighbor Solicitation).
func TestAnswerWakesTheRequester(t *testing.T) {
	nstest.RequireRoot(t)
	for _, c := range []struct {
		name string
		lab  func(*testing.T) *familyLab
		ping []string
	}{
		{"ipv4", ipv4Lab, []string{"ping", "-c1", "-W5"}},
		{"ipv6", ipv6Lab, []string{"ping", "-6", "-c1", "-W5"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := c.lab(t)
			waitForwarding(t, l)
			w := openWaker(t, l)
			ping := exec.Command("ip", append([]string{"netns", "exec", l.containerName}, append(c.ping, l.target.String())...)...)
			if err := ping.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ping.Process.Kill(); ping.Wait() })
			// The container's request is out (its entry INCOMPLETE) and
			// queued in the capture, not read yet: Answer reads it.
			if !waitFor(3*time.Second, func() bool {
				out, _ := nstest.Output(l.containerName, "ip", "neigh", "show", l.target.String(), "dev", "eth0")
				return strings.Contains(out, "INCOMPLETE")
			}) {
				t.Fatal("the container sent no request")
			}
			if n := w.captured.Load(); n != 0 {
				t.Fatalf("%d requests read before any Answer: nothing should read them", n)
			}
			nstest.Run(t, l.overlayName, "ip", "neigh", "replace", l.target.String(), "lladdr", remoteMAC.String(),
				"dev", "vxlan1", "nud", "permanent")
			t0 := time.Now()
			w.Answer(l.target, t0)
			var neigh string
			answered := waitFor(500*time.Millisecond, func() bool {
				neigh, _ = nstest.Output(l.containerName, "ip", "neigh", "show", l.target.String(), "dev", "eth0")
				return strings.Contains(neigh, "lladdr "+remoteMAC.String()+" REACHABLE")
			})
			if !answered {
				t.Fatalf("the container's entry is %q 500 ms after Answer (its retransmit comes at 1 s)", neigh)
			}
			t.Logf("%s: the container had its answer %v after Answer", c.name, time.Since(t0).Round(10*time.Microsecond))
			w.Answer(l.target, time.Now())
			if s := w.Stats(); s.Captured < 1 || s.Answered != 1 || s.SendErrors != 0 {
				t.Errorf("stats %+v, want 1 answered", s)
			}
		})
	}
}

// TestFilterKeepsRequestsOnly: frames a container sends that are no
// request (an ARP reply, an IPv4 broadcast, a frame of another EtherType)
// are dropped by the socket filter, in the kernel: Target never sees them.
// An ARP request for an address is kept, and so is a later one for the
// same address (superseding it).
func TestFilterKeepsRequestsOnly(t *testing.T) {
	nstest.RequireRoot(t)
	l := ipv4Lab(t)
	waitForwarding(t, l)
	w := startWaker(t, l)
	g, err := missgen.New(l.container, "eth0", missgen.ContainerMAC(), missgen.ContainerIP())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Unicast(missgen.FirstMAC(), 20); err != nil { // EtherType 0x88b5
		t.Fatal(err)
	}
	nstest.Output(l.containerName, "ping", "-b", "-c1", "-W1", "10.127.255.255") // an IPv4 broadcast, no reply
	reply := spoof.ARPReply(missgen.ContainerMAC(), missgen.ContainerIP(), remoteMAC, l.target)
	if err := spoof.SendFrame(l.container.Path(), "eth0", reply); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ARP(l.target, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ARP(l.target, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	w.read(0)
	s := w.Stats()
	if s.Captured != 2 || w.ignored.Load() != 0 || s.Dropped["superseded"] != 1 || w.table.Len() != 1 {
		t.Errorf("stats %+v, ignored %d, %d in the table; want 2 captured (one superseded), none ignored, 1 held",
			s, w.ignored.Load(), w.table.Len())
	}
}
