package guard

import (
	"context"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/spoof"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

func nsPath(name string) string { return filepath.Join(rtnl.DefaultNetNSDir, name) }

func dial(t *testing.T, ns *rtnl.NetNS) *nft.Conn {
	t.Helper()
	c, err := nft.Dial(ns.Fd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAllowlist: UDP to the overlay's port is received only from addresses
// in the set; the set changes in place (the rule keeps its handle and its
// counter), and drops are counted.
func TestAllowlist(t *testing.T) {
	nstest.RequireTools(t, "nft")
	hns, host := nstest.NetNS(t, "gh")
	_, peer := nstest.NetNS(t, "gp")
	nstest.Run(t, host, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", peer)
	nstest.Run(t, host, "ip", "addr", "add", "192.0.2.2/24", "dev", "u0")
	nstest.Run(t, host, "ip", "link", "set", "u0", "up")
	for _, a := range []string{"192.0.2.3/24", "192.0.2.9/24"} {
		nstest.Run(t, peer, "ip", "addr", "add", a, "dev", "u0")
	}
	nstest.Run(t, peer, "ip", "link", "set", "u0", "up")
	// The vxlan's socket stands in as a plain UDP socket on the port.
	l, err := spoof.ListenUDP(nsPath(host), netip.MustParseAddrPort("0.0.0.0:4789"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	other, err := spoof.ListenUDP(nsPath(host), netip.MustParseAddrPort("0.0.0.0:4790"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()

	c := dial(t, hns)
	local := netip.MustParseAddr("192.0.2.2")
	a, err := OpenAllowlist(c, 4789, local)
	if err != nil {
		t.Fatal(err)
	}
	member, stranger := netip.MustParseAddr("192.0.2.3"), netip.MustParseAddr("192.0.2.9")
	if err := a.Ensure([]netip.Addr{local, member}); err != nil {
		t.Fatal(err)
	}
	// Neighbours resolved first: a datagram queued behind ARP would arrive
	// after the next change of the set.
	nstest.Run(t, peer, "ping", "-c1", "-W2", "-I", "192.0.2.3", "192.0.2.2")
	send := func(from netip.Addr, port uint16, msg string) {
		t.Helper()
		if err := spoof.SendUDP(nsPath(peer), netip.AddrPortFrom(from, 0), netip.AddrPortFrom(local, port), []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	got := func(l *spoof.Listener) []string {
		var out []string
		for _, r := range l.Wait(500 * time.Millisecond) {
			out = append(out, r.From.Addr().Unmap().String()+" "+r.Payload)
		}
		return out
	}
	send(member, 4789, "from-member")
	send(stranger, 4789, "from-stranger")
	send(stranger, 4790, "other-port")
	if g := got(l); !slices.Equal(g, []string{"192.0.2.3 from-member"}) {
		t.Errorf("port 4789 received %q, want only the member's datagram", g)
	}
	if g := got(other); len(g) != 1 {
		t.Errorf("another port received %q: the allowlist is for the overlay's port only", g)
	}
	if p, _, err := a.Drops(); err != nil || p != 1 {
		t.Errorf("drops = %d, %v; want 1", p, err)
	}
	rules, _ := c.Rules(a.ch)
	if len(rules) != 1 {
		t.Fatalf("rules: %+v", rules)
	}
	handle := rules[0].Handle

	// The stranger joins: allowed at once, in place.
	if add, del, err := a.Sync([]netip.Addr{local, member, stranger}); err != nil || add != 1 || del != 0 {
		t.Fatalf("Sync = +%d -%d, %v", add, del, err)
	}
	send(stranger, 4789, "joined")
	if g := got(l); !slices.Equal(g, []string{"192.0.2.9 joined"}) {
		t.Errorf("after joining: %q", g)
	}
	// The member leaves.
	if add, del, err := a.Sync([]netip.Addr{local, stranger}); err != nil || add != 0 || del != 1 {
		t.Fatalf("Sync = +%d -%d, %v", add, del, err)
	}
	send(member, 4789, "left")
	if g := got(l); len(g) != 0 {
		t.Errorf("after leaving: %q delivered", g)
	}
	// Ensure again (a restart, with what the registry says): same rule,
	// counter running on, the set as asked.
	if err := a.Ensure([]netip.Addr{local, stranger}); err != nil {
		t.Fatal(err)
	}
	rules, _ = c.Rules(a.ch)
	if len(rules) != 1 || rules[0].Handle != handle || rules[0].Packets != 2 {
		t.Errorf("after Ensure: %+v, want the same rule (handle %d) with 2 drops", rules, handle)
	}
	if addrs, _ := a.Addrs(); !slices.Equal(addrs, []netip.Addr{local, stranger}) {
		t.Errorf("Addrs = %v", addrs)
	}
	if err := RemoveAllowlist(c); err != nil {
		t.Fatal(err)
	}
	if out := nstest.Run(t, host, "nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("ruleset after RemoveAllowlist:\n%s", out)
	}
}

// portLab is a bridge with two container ports, a and b, guarded.
type portLab struct {
	over, a, b string
	c          *nft.Conn
	macA, macB ethaddr.MAC
	ipA, ipB   netip.Addr
}

func newPortLab(t *testing.T) *portLab {
	nstest.RequireTools(t, "nft")
	ons, over := nstest.NetNS(t, "go")
	_, a := nstest.NetNS(t, "ga")
	_, b := nstest.NetNS(t, "gb")
	l := &portLab{over: over, a: a, b: b,
		macA: spoof.ParseMAC("02:42:c6:33:64:02"), macB: spoof.ParseMAC("02:42:c6:33:64:03"),
		ipA: netip.MustParseAddr("198.51.100.2"), ipB: netip.MustParseAddr("198.51.100.3")}
	nstest.Run(t, over, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(t, over, "ip", "addr", "add", "198.51.100.1/24", "dev", "br0")
	nstest.Run(t, over, "ip", "link", "set", "br0", "up")
	l.c = dial(t, ons)
	for _, p := range []struct {
		ns, host string
		mac      ethaddr.MAC
		ip       netip.Addr
	}{{a, "va", l.macA, l.ipA}, {b, "vb", l.macB, l.ipB}} {
		if err := InstallPort(l.c, Port{HostIf: p.host, MAC: p.mac, IP: p.ip}); err != nil {
			t.Fatal(err)
		}
		nstest.Run(t, over, "ip", "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns)
		nstest.Run(t, over, "ip", "link", "set", p.host, "master", "br0", "up")
		nstest.Run(t, p.ns, "ip", "link", "set", "eth0", "address", netMAC(p.mac))
		nstest.Run(t, p.ns, "ip", "addr", "add", p.ip.String()+"/24", "dev", "eth0")
		nstest.Run(t, p.ns, "ip", "link", "set", "eth0", "up")
	}
	return l
}

func netMAC(m ethaddr.MAC) string {
	return strings.ToLower(strings.Join([]string{hex(m[0]), hex(m[1]), hex(m[2]), hex(m[3]), hex(m[4]), hex(m[5])}, ":"))
}

func hex(b byte) string { const d = "0123456789abcdef"; return string([]byte{d[b>>4], d[b&15]}) }

func (l *portLab) drops(t *testing.T, hostIf string) map[Reason]uint64 {
	t.Helper()
	ports, err := Ports(l.c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p.HostIf == hostIf {
			return p.Drops
		}
	}
	t.Fatalf("port %s not guarded: %+v", hostIf, ports)
	return nil
}

// TestAntispoof: a container's frames with another source MAC, IPv4 source
// or ARP sender are dropped at its port (and counted by reason); its honest
// traffic flows; removing one port's rules leaves the other's.
func TestAntispoof(t *testing.T) {
	l := newPortLab(t)
	rcv, err := spoof.ListenUDP(nsPath(l.b), netip.AddrPortFrom(l.ipB, 7000))
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()
	// Honest traffic first (it also teaches b's ARP cache a's MAC).
	if out, err := nstest.Output(l.a, "ping", "-c1", "-W2", l.ipB.String()); err != nil {
		t.Fatalf("honest ping a -> b: %v\n%s", err, out)
	}
	honest := spoof.Ether(l.macB, l.macA, spoof.EtherIPv4, spoof.IPv4UDP(l.ipA, l.ipB, 5000, 7000, []byte("honest")))
	forgedIP := spoof.Ether(l.macB, l.macA, spoof.EtherIPv4, spoof.IPv4UDP(netip.MustParseAddr("198.51.100.9"), l.ipB, 5000, 7000, []byte("forged-ip")))
	forgedMAC := spoof.Ether(l.macB, spoof.ParseMAC("02:42:c6:33:64:09"), spoof.EtherIPv4, spoof.IPv4UDP(l.ipA, l.ipB, 5000, 7000, []byte("forged-mac")))
	for _, f := range [][]byte{honest, forgedIP, forgedMAC} {
		if err := spoof.SendFrame(nsPath(l.a), "eth0", f); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	for _, r := range rcv.Wait(500 * time.Millisecond) {
		got = append(got, r.Payload)
	}
	if !slices.Equal(got, []string{"honest"}) {
		t.Errorf("b received %q, want only the honest datagram", got)
	}
	// A forged ARP reply: "the gateway is at a's MAC", and one with another
	// sender MAC in the ARP header. b knows the gateway, and the kernel's
	// lock time (1 s) has passed: without the rules, the reply would
	// overwrite b's entry.
	gw := netip.MustParseAddr("198.51.100.1")
	if out, err := nstest.Output(l.b, "ping", "-c1", "-W2", gw.String()); err != nil {
		t.Fatalf("ping b -> gateway: %v\n%s", err, out)
	}
	time.Sleep(1200 * time.Millisecond)
	for _, f := range [][]byte{
		spoof.Ether(l.macB, l.macA, spoof.EtherARP, spoof.ARPReply(l.macA, gw, l.macB, l.ipB)),
		spoof.Ether(l.macB, l.macA, spoof.EtherARP, spoof.ARPReply(spoof.ParseMAC("02:42:c6:33:64:09"), l.ipA, l.macB, l.ipB)),
	} {
		if err := spoof.SendFrame(nsPath(l.a), "eth0", f); err != nil {
			t.Fatal(err)
		}
	}
	// IPv6 (and any other ethertype) is dropped at the port.
	if err := spoof.SendFrame(nsPath(l.a), "eth0", spoof.Ether(l.macB, l.macA, 0x86dd, make([]byte, 40))); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	neigh := nstest.Run(t, l.b, "ip", "neigh", "show", "198.51.100.1")
	if strings.Contains(neigh, netMAC(l.macA)) {
		t.Errorf("b's ARP cache poisoned: %s", neigh)
	}
	d := l.drops(t, "va")
	if d[ReasonSrcIP] < 1 || d[ReasonSrcMAC] < 1 || d[ReasonARPSender] < 2 || d[ReasonEtherType] < 1 {
		t.Errorf("drops of va = %v, want src_ip, src_mac, 2 arp_sender, ethertype", d)
	}
	// The honest ping still works after all this.
	if out, err := nstest.Output(l.a, "ping", "-c1", "-W2", l.ipB.String()); err != nil {
		t.Errorf("honest ping after the forgeries: %v\n%s", err, out)
	}

	// Removing a's port leaves b's rules alone; installing again is
	// idempotent (same handles).
	before := nstest.Run(t, l.over, "nft", "-a", "list", "chain", "bridge", "overlaynet-guard", "port-vb")
	if err := InstallPort(l.c, Port{HostIf: "vb", MAC: l.macB, IP: l.ipB}); err != nil {
		t.Fatal(err)
	}
	if err := RemovePort(l.c, "va"); err != nil {
		t.Fatal(err)
	}
	if err := RemovePort(l.c, "va"); err != nil {
		t.Errorf("removing a removed port: %v", err)
	}
	after := nstest.Run(t, l.over, "nft", "-a", "list", "chain", "bridge", "overlaynet-guard", "port-vb")
	if stripCounters(before) != stripCounters(after) {
		t.Errorf("b's chain changed:\n%s\n---\n%s", before, after)
	}
	ruleset := nstest.Run(t, l.over, "nft", "list", "ruleset")
	if strings.Contains(ruleset, "va") {
		t.Errorf("a's rules left after RemovePort:\n%s", ruleset)
	}
	if err := RemoveAntispoof(l.c); err != nil {
		t.Fatal(err)
	}
	if out := nstest.Run(t, l.over, "nft", "list", "ruleset"); strings.TrimSpace(out) != "" {
		t.Errorf("ruleset after RemoveAntispoof:\n%s", out)
	}
}

// stripCounters removes counter values from nft output.
func stripCounters(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "counter packets"); i >= 0 {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// TestAllowlistSyncRepeated: 1,000 nodes put in and taken out of the set
// 150 times: every change commits (Sync works from what it committed, not
// from a dump of the set, which may repeat or skip elements while the
// kernel resizes its hash table).
func TestAllowlistSyncRepeated(t *testing.T) {
	nstest.RequireTools(t, "nft")
	ns, _ := nstest.NetNS(t, "gr")
	c := dial(t, ns)
	local := netip.MustParseAddr("10.0.0.1")
	a, err := OpenAllowlist(c, 4789, local)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Ensure([]netip.Addr{local}); err != nil {
		t.Fatal(err)
	}
	nodes := []netip.Addr{local}
	for i := range 1000 {
		nodes = append(nodes, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}))
	}
	for k := range 150 {
		if add, _, err := a.Sync(nodes); err != nil || add != 1000 {
			t.Fatalf("cycle %d: add: +%d, %v", k, add, err)
		}
		if _, del, err := a.Sync([]netip.Addr{local}); err != nil || del != 1000 {
			t.Fatalf("cycle %d: remove: -%d, %v", k, del, err)
		}
	}
	if got, err := a.Addrs(); err != nil || len(got) != 1 || got[0] != local {
		t.Errorf("Addrs = %v, %v; want only %s", got, err, local)
	}
}

// feedRegistry is a registry whose records are what the test says, with a
// change feed the test drives.
type feedRegistry struct {
	recs []registry.Record
	ch   chan registry.Change
}

func (f *feedRegistry) LookupMAC(context.Context, netip.Addr) (ethaddr.MAC, error) {
	return ethaddr.MAC{}, registry.ErrNotFound
}
func (f *feedRegistry) LookupVTEP(context.Context, ethaddr.MAC) (netip.Addr, error) {
	return netip.Addr{}, registry.ErrNotFound
}
func (f *feedRegistry) Register(context.Context, registry.Record) error   { return nil }
func (f *feedRegistry) Unregister(context.Context, registry.Record) error { return nil }
func (f *feedRegistry) List(context.Context) ([]registry.Record, error)   { return f.recs, nil }
func (f *feedRegistry) Close() error                                      { return nil }
func (f *feedRegistry) Watch(context.Context) (<-chan registry.Change, error) {
	return f.ch, nil
}

// TestFollowFeed: with a change feed, the allowlist follows the records
// change by change: a node's first record adds it, its last record's
// deletion removes it; nothing is removed before the feed has delivered
// every record (synced). Either Follow watches the feed itself, or it
// follows the VTEPs counted from another consumer's watch (Tee, as the
// daemon shares the resolver's), which receives every change unchanged.
func TestFollowFeed(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "own"
		if shared {
			name = "shared"
		}
		t.Run(name, func(t *testing.T) { testFollowFeed(t, shared) })
	}
}

func testFollowFeed(t *testing.T, shared bool) {
	nstest.RequireTools(t, "nft")
	ns, _ := nstest.NetNS(t, "gf")
	c := dial(t, ns)
	local := netip.MustParseAddr("192.0.2.2")
	a, err := OpenAllowlist(c, 4789, local)
	if err != nil {
		t.Fatal(err)
	}
	rec := func(ip, vtep string) registry.Record {
		return registry.Record{IP: netip.MustParseAddr(ip), MAC: ethaddr.MAC{2, 0x42, 1, 2, 3, 4}, VTEP: netip.MustParseAddr(vtep)}
	}
	r1, r2, r3 := rec("198.51.100.3", "192.0.2.3"), rec("198.51.100.4", "192.0.2.4"), rec("198.51.100.5", "192.0.2.4")
	reg := &feedRegistry{recs: []registry.Record{r1, r2, r3}, ch: make(chan registry.Change, 16)}
	want, _, _ := Wanted(t.Context(), reg, registry.NewChecker(registry.Policy{}, nil, 0), local)
	if err := a.Ensure(want); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st := &FollowStats{}
	fc := FollowConfig{Allowlist: a, Registry: reg, Feed: reg, Local: local, Resync: time.Hour, Stats: st}
	var consumed chan registry.Change // what the other consumer of a shared feed received
	if shared {
		fc.Feed, fc.VTEPs = nil, NewFeedVTEPs()
		ch, err := Tee(reg, fc.VTEPs).Watch(ctx)
		if err != nil {
			t.Fatal(err)
		}
		consumed = make(chan registry.Change, 16)
		go func() {
			for c := range ch {
				consumed <- c
			}
		}()
	}
	startFollow(t, fc)
	wait := func(what string, want ...string) {
		t.Helper()
		awaitAllowlist(t, a, what, want...)
	}
	// The feed's first delivery, partial: nothing is removed yet.
	reg.ch <- registry.Change{Kind: registry.ChangePut, Record: r1}
	time.Sleep(100 * time.Millisecond)
	wait("before synced", "192.0.2.2", "192.0.2.3", "192.0.2.4")
	reg.ch <- registry.Change{Kind: registry.ChangePut, Record: r2}
	reg.ch <- registry.Change{Kind: registry.ChangePut, Record: r3}
	reg.ch <- registry.Change{Kind: registry.ChangeSynced}
	wait("synced", "192.0.2.2", "192.0.2.3", "192.0.2.4")
	// A node joins with its first record.
	reg.ch <- registry.Change{Kind: registry.ChangePut, Record: rec("198.51.100.6", "192.0.2.5")}
	wait("joined", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5")
	// .4 keeps one record of two: still allowed; then none: removed.
	reg.ch <- registry.Change{Kind: registry.ChangeDelete, Record: r2}
	time.Sleep(100 * time.Millisecond)
	wait("one record left", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5")
	reg.ch <- registry.Change{Kind: registry.ChangeDelete, Record: r3}
	wait("expired", "192.0.2.2", "192.0.2.3", "192.0.2.5")
	if shared {
		// The consumer got every change, in order.
		kinds := []registry.ChangeKind{registry.ChangePut, registry.ChangePut, registry.ChangePut, registry.ChangeSynced,
			registry.ChangePut, registry.ChangeDelete, registry.ChangeDelete}
		for i, k := range kinds {
			select {
			case c := <-consumed:
				if c.Kind != k {
					t.Errorf("change %d through the tee: %s, want %s", i, c.Kind, k)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("change %d not delivered through the tee", i)
			}
		}
	}
	// The stats follow the commit the test saw.
	deadline := time.Now().Add(2 * time.Second)
	for st.Updates.Load() != 2 || st.Size.Load() != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("stats: %d updates, size %d; want 2 and 3", st.Updates.Load(), st.Size.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// nodesRegistry is a feedRegistry that advertises live nodes apart from its
// records (a NodeLister, as etcd) and says when they changed (a
// MemberWatcher): the test sets the nodes and sends on changed.
type nodesRegistry struct {
	*feedRegistry
	mu      sync.Mutex
	nodes   []netip.Addr
	changed chan struct{}
}

func (n *nodesRegistry) NodeVTEPs(context.Context) ([]netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.nodes), nil
}

func (n *nodesRegistry) WatchMembers(context.Context) (<-chan struct{}, error) { return n.changed, nil }

func (n *nodesRegistry) set(nodes ...string) {
	n.mu.Lock()
	n.nodes = nil
	for _, s := range nodes {
		n.nodes = append(n.nodes, netip.MustParseAddr(s))
	}
	n.mu.Unlock()
	n.changed <- struct{}{}
}

// TestFollowFeedLiveNodes: with a change feed, a node that starts (its
// live node advertised, no record yet) is admitted as soon as the store
// says its live nodes changed, not at the next Resync (an hour here); one
// that stops is removed the same way.
func TestFollowFeedLiveNodes(t *testing.T) {
	nstest.RequireTools(t, "nft")
	local := netip.MustParseAddr("192.0.2.2")
	a := localAllowlist(t, "gn", local)
	reg := &nodesRegistry{feedRegistry: &feedRegistry{ch: make(chan registry.Change, 4)}, changed: make(chan struct{}, 1)}
	reg.ch <- registry.Change{Kind: registry.ChangeSynced}
	startFollow(t, FollowConfig{Allowlist: a, Registry: reg, Feed: reg, Local: local, Resync: time.Hour})
	awaitAllowlist(t, a, "start", "192.0.2.2")
	reg.set("192.0.2.7")
	awaitAllowlist(t, a, "a node started", "192.0.2.2", "192.0.2.7")
	reg.set()
	awaitAllowlist(t, a, "the node stopped", "192.0.2.2")
}
