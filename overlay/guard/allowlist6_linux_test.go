package guard

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/spoof"
)

// TestAllowlistIPv6: on an IPv6 underlay (the node's VTEP IPv6) the
// allowlist is a set of IPv6 addresses: UDP to the overlay's port is
// received from a member's IPv6 source only, a stranger's dropped and
// counted, and a stranger who joins is let in at once; an IPv4 address is
// refused from the set.
func TestAllowlistIPv6(t *testing.T) {
	nstest.RequireTools(t, "nft")
	hns, host := nstest.NetNS(t, "g6h")
	_, peer := nstest.NetNS(t, "g6p")
	nstest.Run(t, host, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", peer)
	nstest.Run(t, host, "ip", "addr", "add", "2001:db8::2/64", "dev", "u0", "nodad")
	nstest.Run(t, host, "ip", "link", "set", "u0", "up")
	for _, a := range []string{"2001:db8::3/64", "2001:db8::9/64"} {
		nstest.Run(t, peer, "ip", "addr", "add", a, "dev", "u0", "nodad")
	}
	nstest.Run(t, peer, "ip", "link", "set", "u0", "up")
	l, err := spoof.ListenUDP(nsPath(host), netip.MustParseAddrPort("[::]:4789"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c := dial(t, hns)
	local := netip.MustParseAddr("2001:db8::2")
	a, err := OpenAllowlist(c, 4789, local)
	if err != nil {
		t.Fatal(err)
	}
	member, stranger := netip.MustParseAddr("2001:db8::3"), netip.MustParseAddr("2001:db8::9")
	if err := a.Ensure([]netip.Addr{local, member}); err != nil {
		t.Fatal(err)
	}
	if err := a.Ensure([]netip.Addr{local, netip.MustParseAddr("192.0.2.3")}); err == nil {
		t.Error("an IPv4 address accepted into an IPv6 allowlist")
	}
	if err := a.Ensure([]netip.Addr{local, member}); err != nil {
		t.Fatal(err)
	}
	nstest.Run(t, peer, "ping", "-c1", "-W2", "-I", "2001:db8::3", "2001:db8::2")
	nstest.Run(t, peer, "ping", "-c1", "-W2", "-I", "2001:db8::9", "2001:db8::2")
	send := func(from netip.Addr, msg string) {
		t.Helper()
		if err := spoof.SendUDP(nsPath(peer), netip.AddrPortFrom(from, 0), netip.AddrPortFrom(local, 4789), []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	got := func() []string {
		var out []string
		for _, r := range l.Wait(500 * time.Millisecond) {
			out = append(out, r.From.Addr().String()+" "+r.Payload)
		}
		return out
	}
	send(member, "from-member")
	send(stranger, "from-stranger")
	if g := got(); !slices.Equal(g, []string{"2001:db8::3 from-member"}) {
		t.Errorf("received %q, want only the member's datagram", g)
	}
	if p, _, err := a.Drops(); err != nil || p != 1 {
		t.Errorf("drops = %d, %v; want 1", p, err)
	}
	if add, del, err := a.Sync([]netip.Addr{local, member, stranger}); err != nil || add != 1 || del != 0 {
		t.Fatalf("Sync = +%d -%d, %v", add, del, err)
	}
	send(stranger, "joined")
	if g := got(); !slices.Equal(g, []string{"2001:db8::9 joined"}) {
		t.Errorf("after joining: %q", g)
	}
	if err := RemoveAllowlist(c); err != nil {
		t.Fatal(err)
	}
}
