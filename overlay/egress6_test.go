package overlay

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/rtnl"
)

// The IPv6 of the egress lab: each node's underlay device and the outside
// host have an address in 2001:db8::/64 beside their IPv4 one.
var (
	egressNode6 = []netip.Addr{netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::3")}
	outside6    = netip.MustParseAddr("2001:db8::100")
	prefix6     = netip.MustParsePrefix("2001:db8:42::1/64")
)

// newEgressLab6 is newEgressLab with IPv6 on the underlay.
func newEgressLab6(t *testing.T, before func(tn *testNode)) *egressLab {
	t.Helper()
	nstest.RequireTools(t, "ip6tables-nft")
	lab := newEgressLab(t, before)
	for i, tn := range lab.nodes {
		runIn(t, tn.hostPath(), "ip", "addr", "add", egressNode6[i].String()+"/64", "dev", "ul0", "nodad")
	}
	runIn(t, filepath.Join(rtnl.DefaultNetNSDir, lab.outName), "ip", "addr", "add", outside6.String()+"/64", "dev", "ul0", "nodad")
	return lab
}

func egressConfig6(vtep string, e *egress.Config) Config {
	cfg := egressConfig(vtep, e)
	cfg.Gateway6 = prefix6
	return cfg
}

// up6 creates dual-stack overlays with egress e on the nodes (over an IPv6
// underlay with underlay6), attaches a container on each (both families)
// and programs each node with the other node's container, both addresses,
// from the registry.
func (lab *egressLab) up6(e *egress.Config, underlay6 ...bool) {
	t := lab.t
	t.Helper()
	for i, tn := range lab.nodes {
		cfg := egressConfig6(egressVTEPs[i], e)
		if len(underlay6) > 0 && underlay6[0] {
			cfg.Local, cfg.MTU = egressNode6[i], 0
		}
		tn.mustCreate(cfg)
		lab.eps = append(lab.eps, tn.mustAttach(AttachRequest{Name: "ctn", IP: lab.ctnIPs[i]}))
	}
	for i, tn := range lab.nodes {
		programFromRegistry(t, context.Background(), tn, lab.eps[1-i])
	}
}

func ping6(t *testing.T, path string, dst netip.Addr) {
	t.Helper()
	out, err := outputIn(path, "ping", "-6", "-c1", "-W3", dst.String())
	if err != nil || !strings.Contains(out, "1 received") {
		t.Fatalf("ping -6 %s from %s: %v\n%s", dst, filepath.Base(path), err, out)
	}
}

// check6 is the IPv6 half of check: the outside host reached from both
// containers (ping, TCP), seen as outsideSees(i); container to container
// not masqueraded; each node reaching its own container over IPv6 from its
// IPv6 address.
func (lab *egressLab) check6(outsideSees func(i int) netip.Addr) {
	t := lab.t
	t.Helper()
	srv, seen := listen(t, lab.outside, "tcp6", netip.AddrPortFrom(outside6, 0).String())
	for i, tn := range lab.nodes {
		ping6(t, tn.path("ctn"), outside6)
		if src, want := dialFrom(t, openPath(t, tn.path("ctn")), srv, seen), outsideSees(i); src != want {
			t.Errorf("outside saw container %d as %s, want %s", i+1, src, want)
		}
	}
	c1, c2 := lab.eps[0].IP6.Addr(), lab.eps[1].IP6.Addr()
	peer, peerSeen := listen(t, openPath(t, lab.nodes[1].path("ctn")), "tcp6", netip.AddrPortFrom(c2, 0).String())
	ping6(t, lab.nodes[0].path("ctn"), c2)
	if src := dialFrom(t, openPath(t, lab.nodes[0].path("ctn")), peer, peerSeen); src != c1 {
		t.Errorf("container 2 saw container 1 as %s, want %s (not masqueraded)", src, c1)
	}
	for i, tn := range lab.nodes {
		ip6 := lab.eps[i].IP6.Addr()
		// The overlay namespace solicits the container afresh (from the
		// bridge's link-local address) for the node's packets.
		runIn(t, tn.path("overns"), "ip", "-6", "neigh", "flush", "dev", "br0")
		ctnSrv, ctnSeen := listen(t, openPath(t, tn.path("ctn")), "tcp6", netip.AddrPortFrom(ip6, 0).String())
		ping6(t, tn.hostPath(), ip6)
		if src := dialFrom(t, tn.host, ctnSrv, ctnSeen); src != egressNode6[i] {
			t.Errorf("container %d saw its node as %s, want %s", i+1, src, egressNode6[i])
		}
	}
}

// conf6 returns every IPv6 setting of every device of the namespace at
// path, and every device's IPv4 forwarding (what egress may change).
func conf6(t *testing.T, path string) string {
	t.Helper()
	return runIn(t, path, "sh", "-c", "grep -s . /proc/sys/net/ipv6/conf/*/* /proc/sys/net/ipv4/conf/*/forwarding || true")
}

// TestEgressIPv6: dual-stack containers on two nodes, over an IPv4 and
// over an IPv6 underlay, reach an IPv6 host outside the overlay (ping,
// TCP) seen as their node's IPv6 address (NAT66; over the IPv6 underlay,
// the VTEP), and each other unmasqueraded; each node reaches its own
// container over IPv6; status shows the IPv6 routes, the IPv6 forwarding
// values and the NAT66 rule with its counter; create again changes no
// rule; reset leaves the ruleset byte-identical and every IPv4 forwarding
// and IPv6 setting of the node as it was.
func TestEgressIPv6(t *testing.T) {
	for _, u := range []string{"ipv4 underlay", "ipv6 underlay"} {
		t.Run(u, func(t *testing.T) { testEgressIPv6(t, u == "ipv6 underlay") })
	}
}

func testEgressIPv6(t *testing.T, underlay6 bool) {
	lab := newEgressLab6(t, nil)
	rules, confs := make([]string, 2), make([]string, 2)
	for i, tn := range lab.nodes {
		rules[i], confs[i] = tn.ruleset(false), conf6(t, tn.hostPath())
	}
	lab.up6(&egress.Config{}, underlay6)
	lab.check()
	lab.check6(func(i int) netip.Addr { return egressNode6[i] })
	for i, tn := range lab.nodes {
		st, err := tn.status()
		if err != nil {
			t.Fatal(err)
		}
		if underlay6 != (FamilyOf(st.Overlay.VTEP) == IPv6) {
			t.Fatalf("node %d VTEP %s", i+1, st.Overlay.VTEP)
		}
		e := st.Egress
		if e == nil || len(st.Problems) != 0 || e.IPv6 == nil || e.IPv6.Mode != egress.Mode6Masquerade || e.IPv6.Dev != "ul0" || e.IPv6.Src != egressNode6[i] {
			t.Fatalf("node %d status: egress %+v, problems %q", i+1, e, st.Problems)
		}
		if len(e.Routes) != 4 || !e.Routes[2].Present || !e.Routes[3].Present || e.Routes[3].Route != "2001:db8:42::/64 via fe80::2 dev overlay0 src "+egressNode6[i].String() {
			t.Errorf("node %d routes %+v", i+1, e.Routes)
		}
		var six int
		for _, f := range e.Forwarding {
			if f.Value != 1 || !f.SetByEgress || f.Was != 0 {
				t.Errorf("node %d forwarding %+v", i+1, f)
			}
			if f.Setting == "ipv6 force_forwarding" {
				six++
			}
		}
		if len(e.Forwarding) != 8 || six != 4 {
			t.Errorf("node %d forwarding %+v", i+1, e.Forwarding)
		}
		if len(e.Rules) != 2 || e.Rules[1].Tag != "overlaynet-egress masquerade ipv6" || e.Rules[1].Packets == 0 {
			t.Errorf("node %d rules %+v", i+1, e.Rules)
		}
		if host := conf6(t, tn.hostPath()); !strings.Contains(host, "ipv6/conf/ul0/force_forwarding:1") || strings.Contains(host, "ipv6/conf/all/forwarding:1") {
			t.Errorf("node %d host settings:\n%s", i+1, host)
		}
		mid := tn.ruleset(false)
		cfg := egressConfig6(egressVTEPs[i], &egress.Config{})
		if underlay6 {
			cfg.Local, cfg.MTU = egressNode6[i], 0
		}
		tn.mustCreate(cfg)
		if again := tn.ruleset(false); again != mid {
			t.Errorf("node %d: a second create changed the ruleset:\n%s\n---\n%s", i+1, mid, again)
		}
	}
	for i, tn := range lab.nodes {
		if err := tn.reset(); err != nil {
			t.Fatal(err)
		}
		if after := tn.ruleset(false); after != rules[i] {
			t.Errorf("node %d ruleset after reset differs:\nbefore:\n%s\nafter:\n%s", i+1, rules[i], after)
		}
		if after := conf6(t, tn.hostPath()); after != confs[i] {
			t.Errorf("node %d settings after reset differ:\nbefore:\n%s\nafter:\n%s", i+1, confs[i], after)
		}
		if r := runIn(t, tn.hostPath(), "ip", "-6", "route"); strings.Contains(r, "2001:db8:42::") {
			t.Errorf("node %d: route to the overlay left:\n%s", i+1, r)
		}
	}
}

// dockerForward6 is dockerForward for both families: Docker with IPv6
// leaves ip6tables' FORWARD policy drop as well.
func dockerForward6(tn *testNode) {
	dockerForward(tn)
	for _, args := range [][]string{
		{"-N", "DOCKER-USER"},
		{"-A", "FORWARD", "-j", "DOCKER-USER"},
		{"-A", "DOCKER-USER", "-j", "RETURN"},
		{"-P", "FORWARD", "DROP"},
	} {
		runIn(tn.t, tn.hostPath(), "ip6tables-nft", args...)
	}
}

// TestEgressIPv6ForwardDrop: on nodes whose IPv4 and IPv6 FORWARD policies
// are drop, create appends the accept rules of each family to its chain
// (listed by ip6tables), IPv6 egress works, and reset leaves the ruleset
// as it was (compared without counters: Docker's rules count the test's
// traffic) and the settings byte for byte; with no-host-accept, create
// refuses naming the ip6tables rules missing, and changes nothing.
func TestEgressIPv6ForwardDrop(t *testing.T) {
	lab := newEgressLab6(t, dockerForward6)
	tn := lab.nodes[0]
	before, conf := tn.ruleset(true), conf6(t, tn.hostPath())
	_, err := tn.create(egressConfig6(egressVTEPs[0], &egress.Config{NoHostAccept: true}))
	for _, want := range []string{
		`"ip6tables -A FORWARD -s 2001:db8:42::/64 -j ACCEPT" in chain ip6 filter FORWARD`,
		`"ip6tables -A FORWARD -d 2001:db8:42::/64 -j ACCEPT" in chain ip6 filter FORWARD`,
		`"iptables -A FORWARD -s 198.51.100.0/24 -j ACCEPT" in chain ip filter FORWARD`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("create with no-host-accept: %v, want it to name %s", err, want)
		}
	}
	if after := tn.ruleset(true); after != before || conf6(t, tn.hostPath()) != conf || len(tn.netnsNames()) != 0 {
		t.Fatalf("a refused create changed the node:\n%s", after)
	}
	lab.up6(&egress.Config{})
	lab.check6(func(i int) netip.Addr { return egressNode6[i] })
	out := runIn(t, tn.hostPath(), "ip6tables-nft", "-S", "FORWARD")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 2 ||
		lines[len(lines)-2] != `-A FORWARD -s 2001:db8:42::/64 -m comment --comment "overlaynet-egress accept from 2001:db8:42::/64" -j ACCEPT` ||
		lines[len(lines)-1] != `-A FORWARD -d 2001:db8:42::/64 -m comment --comment "overlaynet-egress accept to 2001:db8:42::/64" -j ACCEPT` {
		t.Errorf("ip6tables -S FORWARD:\n%s", out)
	}
	st, err := tn.status()
	if err != nil || len(st.Problems) != 0 || len(st.Egress.Rules) != 6 {
		t.Fatalf("status: %v, problems %q, rules %+v", err, st.Problems, st.Egress.Rules)
	}
	for _, n := range lab.nodes {
		if err := n.reset(); err != nil {
			t.Fatal(err)
		}
	}
	if after := tn.ruleset(true); after != before {
		t.Errorf("ruleset after reset differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if after := conf6(t, tn.hostPath()); after != conf {
		t.Errorf("settings after reset differ:\nbefore:\n%s\nafter:\n%s", conf, after)
	}
}

// TestEgressIPv6Route: with --egress6 route and an outside network that
// routes the overlay's IPv6 prefix to node 1, containers on both nodes
// reach the outside host seen with their own addresses (node 2's replies
// come back through node 1 and across the overlay); no NAT66 rule exists.
func TestEgressIPv6Route(t *testing.T) {
	lab := newEgressLab6(t, nil)
	runIn(t, filepath.Join(rtnl.DefaultNetNSDir, lab.outName), "ip", "-6", "route", "add", "2001:db8:42::/64", "via", egressNode6[0].String())
	lab.up6(&egress.Config{Mode6: egress.Mode6Route})
	lab.check6(func(i int) netip.Addr { return lab.eps[i].IP6.Addr() })
	for i, tn := range lab.nodes {
		if out := tn.ruleset(false); strings.Contains(out, "masquerade ipv6") || !strings.Contains(out, "overlaynet-egress masquerade") {
			t.Errorf("node %d ruleset:\n%s", i+1, out)
		}
		if err := tn.reset(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEgressIPv6BadInput: an IPv6 egress mode on an IPv4 overlay, an
// unknown mode, a route to the overlay's prefix already on the node, and a
// second create with another IPv6 mode: clear errors, nothing changed.
func TestEgressIPv6BadInput(t *testing.T) {
	lab := newEgressLab6(t, nil)
	tn := lab.nodes[0]
	before, links, conf := tn.ruleset(false), tn.links(""), conf6(t, tn.hostPath())
	unchanged := func(what string) {
		t.Helper()
		if after := tn.ruleset(false); after != before {
			t.Errorf("%s: ruleset changed:\n%s", what, after)
		}
		if l := tn.links(""); !slices.Equal(l, links) {
			t.Errorf("%s: links changed %v -> %v", what, links, l)
		}
		if c := conf6(t, tn.hostPath()); c != conf {
			t.Errorf("%s: settings changed", what)
		}
		if names := tn.netnsNames(); len(names) != 0 || len(tn.stateFiles()) != 0 {
			t.Errorf("%s: left namespaces %v, state %v", what, names, tn.stateFiles())
		}
	}
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"IPv4 overlay", egressConfig(egressVTEPs[0], &egress.Config{Mode6: egress.Mode6Route}), "IPv6 egress route needs an IPv6 gateway"},
		{"unknown mode", egressConfig6(egressVTEPs[0], &egress.Config{Mode6: "nat64"}), `IPv6 egress "nat64": want masquerade, route or none`},
	} {
		if _, err := tn.create(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
		unchanged(c.name)
	}
	runIn(t, tn.hostPath(), "ip", "-6", "route", "add", "2001:db8:42::/64", "via", "2001:db8::9")
	if _, err := tn.create(egressConfig6(egressVTEPs[0], &egress.Config{})); err == nil || !strings.Contains(err.Error(), "the host already routes 2001:db8:42::/64 (via 2001:db8::9 dev ul0)") {
		t.Errorf("create over a route to the prefix: %v", err)
	}
	runIn(t, tn.hostPath(), "ip", "-6", "route", "del", "2001:db8:42::/64")
	unchanged("route in the way")
	tn.mustCreate(egressConfig6(egressVTEPs[0], &egress.Config{}))
	mid := tn.ruleset(false)
	var mm *MismatchError
	if _, err := tn.create(egressConfig6(egressVTEPs[0], &egress.Config{Mode6: egress.Mode6Route})); !errors.As(err, &mm) || !strings.Contains(err.Error(), "state egress IPv6: want route, have masquerade") {
		t.Errorf("second create with another IPv6 mode: %v", err)
	}
	if after := tn.ruleset(false); after != mid {
		t.Errorf("a refused second create changed the ruleset:\n%s", after)
	}
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
	unchanged("reset")
}
