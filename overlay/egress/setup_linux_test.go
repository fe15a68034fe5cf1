package egress

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// node is a host namespace with an underlay device and an overlay
// namespace holding a bridge with the gateway, as overlay.Create leaves
// them before egress.
type node struct {
	t                *testing.T
	host, ov         *rtnl.NetNS
	hostName, ovName string
	p                Params
}

func newNode(t *testing.T) *node {
	t.Helper()
	nstest.RequireTools(t, "nft", "iptables-nft")
	n := &node{t: t}
	n.host, n.hostName = nstest.NetNS(t, "egh")
	n.ov, n.ovName = nstest.NetNS(t, "ego")
	nstest.Run(t, n.hostName, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ulpeer")
	nstest.Run(t, n.hostName, "ip", "addr", "add", "192.0.2.2/24", "dev", "ul0")
	nstest.Run(t, n.hostName, "ip", "link", "set", "ul0", "up")
	nstest.Run(t, n.ovName, "ip", "link", "add", "br0", "type", "bridge")
	nstest.Run(t, n.ovName, "ip", "addr", "add", "198.51.100.1/24", "dev", "br0")
	nstest.Run(t, n.ovName, "ip", "link", "set", "br0", "up")
	n.p = Params{Host: nstest.Dial(t, n.host), Overlay: nstest.Dial(t, n.ov), OverlayNS: n.ov, OverlayNetNS: n.ovName,
		Subnet: netip.MustParsePrefix("198.51.100.0/24"), Bridge: "br0", VTEP: netip.MustParseAddr("192.0.2.2"),
		UnderlayDev: "ul0", Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return n
}

// snapshot is everything Setup may change, as the tools list it.
func (n *node) snapshot() string {
	var b strings.Builder
	for _, ns := range []string{n.hostName, n.ovName} {
		for _, args := range [][]string{
			{"nft", "list", "ruleset"},
			{"ip", "-o", "link"},
			{"ip", "-o", "-4", "addr"},
			{"ip", "-4", "route"},
			{"sh", "-c", "grep . /proc/sys/net/ipv4/conf/*/forwarding"},
		} {
			b.WriteString(nstest.Run(n.t, ns, args[0], args[1:]...))
		}
	}
	return b.String()
}

func (n *node) setup(cfg Config, prev *State) (st *State, undo func() error, err error) {
	err = n.host.Do(func() error {
		var err error
		st, undo, err = Setup(n.p, cfg, prev)
		return err
	})
	return st, undo, err
}

func (n *node) teardown(st *State) error {
	return n.host.Do(func() error { return Teardown(n.p, st) })
}

// TestSetupRollback fails Setup after each of its steps, on a host whose
// FORWARD policy is drop: everything it changed is taken back.
func TestSetupRollback(t *testing.T) {
	n := newNode(t)
	nstest.Run(t, n.hostName, "iptables-nft", "-P", "FORWARD", "DROP")
	before := n.snapshot()
	t.Cleanup(func() { n.p.hook = nil })
	// The steps of a Setup on this node, as its hook sees them.
	var all []string
	n.p.hook = func(s string) error { all = append(all, s); return nil }
	_, undo, err := n.setup(Config{}, nil)
	n.p.hook = nil
	if err != nil {
		t.Fatal(err)
	}
	if err := n.host.Do(undo); err != nil {
		t.Fatal(err)
	}
	want := []string{"veth", "host-address", "overlay-address", "up", "default-route", "subnet-route",
		"forwarding br0", "forwarding egress0", "forwarding overlay0", "forwarding ul0", "table", "masquerade",
		"accept ip filter FORWARD"}
	if !slices.Equal(all, want) {
		t.Errorf("steps %q, want %q", all, want)
	}
	n.failEach(t, all, n.snapshot, before)
	// The undo Setup hands back takes back what that call made, and no more.
	st, undo, err := n.setup(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	made := n.snapshot()
	if made == before || len(st.HostAccept) != 1 || len(st.Forwarding) != 4 || !st.CreatedVeth || !st.CreatedTable {
		t.Fatalf("state %+v", st)
	}
	st2, undo2, err := n.setup(Config{}, st)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot(); got != made {
		t.Errorf("a second Setup changed:\n%s\nbefore:\n%s", got, made)
	}
	if err := n.host.Do(undo2); err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot(); got != made {
		t.Errorf("the undo of a Setup that made nothing changed:\n%s", got)
	}
	if st2.Link != st.Link || len(st2.Forwarding) != 4 || st2.Forwarding[0] != st.Forwarding[0] {
		t.Errorf("second state %+v, first %+v", st2, st)
	}
	if err := n.host.Do(undo); err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot(); got != before {
		t.Errorf("after undo:\n%s\nbefore:\n%s", got, before)
	}
}

// TestTeardownKeepsOthers: forwarding that was on before stays on,
// someone else's rules in the FORWARD chain stay, and a second Teardown
// finds nothing to do.
func TestTeardownKeepsOthers(t *testing.T) {
	n := newNode(t)
	nstest.Run(t, n.hostName, "iptables-nft", "-P", "FORWARD", "DROP")
	nstest.Run(t, n.hostName, "iptables-nft", "-A", "FORWARD", "-i", "ul0", "-j", "ACCEPT")
	nstest.Run(t, n.hostName, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/conf/ul0/forwarding") // the test's hostile condition
	before := n.snapshot()
	st, _, err := n.setup(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range st.Forwarding {
		if f.Dev == "ul0" {
			t.Errorf("recorded a change of ul0, which was on: %+v", st.Forwarding)
		}
	}
	if err := n.teardown(st); err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot(); got != before {
		t.Errorf("after teardown:\n%s\nbefore:\n%s", got, before)
	}
	if err := n.teardown(st); err != nil {
		t.Errorf("second teardown: %v", err)
	}
}

// TestSetupConflicts: what is in the way is refused before anything
// changes.
func TestSetupConflicts(t *testing.T) {
	n := newNode(t)
	before := n.snapshot()
	nstest.Run(t, n.hostName, "ip", "link", "add", DefaultHostIf, "type", "bridge")
	if _, _, err := n.setup(Config{}, nil); err == nil || !strings.Contains(err.Error(), "a device overlay0 (kind \"bridge\") exists in the host namespace") {
		t.Errorf("Setup over a foreign overlay0: %v", err)
	}
	nstest.Run(t, n.hostName, "ip", "link", "del", DefaultHostIf)
	nstest.Run(t, n.hostName, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.9")
	if _, _, err := n.setup(Config{}, nil); err == nil || !strings.Contains(err.Error(), "the host already routes 198.51.100.0/24 (via 192.0.2.9 dev ul0)") {
		t.Errorf("Setup over a host route to the overlay: %v", err)
	}
	nstest.Run(t, n.hostName, "ip", "route", "del", "198.51.100.0/24")
	nstest.Run(t, n.ovName, "ip", "route", "add", "default", "dev", "br0")
	if _, _, err := n.setup(Config{}, nil); err == nil || !strings.Contains(err.Error(), "has a default route already") {
		t.Errorf("Setup over an overlay default route: %v", err)
	}
	nstest.Run(t, n.ovName, "ip", "route", "del", "default")
	nstest.Run(t, n.hostName, "ip", "route", "add", "169.254.0.0/16", "dev", "ul0")
	if _, _, err := n.setup(Config{}, nil); err == nil || !strings.Contains(err.Error(), "every /30 of 169.254.100.0/24 collides") {
		t.Errorf("Setup with the whole default range routed: %v", err)
	}
	nstest.Run(t, n.hostName, "ip", "route", "del", "169.254.0.0/16")
	if got := n.snapshot(); got != before {
		t.Errorf("refused Setups changed:\n%s\nbefore:\n%s", got, before)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{}, ""},
		{Config{LinkSubnet: netip.MustParsePrefix("10.1.0.0/30"), Dev: "eth0", HostIf: "a", OverlayIf: "b"}, ""},
		{Config{LinkSubnet: netip.MustParsePrefix("2001:db8::/64")}, "is not IPv4"},
		{Config{LinkSubnet: netip.MustParsePrefix("10.0.0.0/8")}, "want a prefix of /16../30"},
		{Config{LinkSubnet: netip.MustParsePrefix("10.1.0.2/30")}, "host bits set (want 10.1.0.0/30)"},
		{Config{LinkSubnet: netip.MustParsePrefix("224.1.0.0/30")}, "not unicast"},
		{Config{Dev: "a/b"}, `dev "a/b": contains '/'`},
		{Config{HostIf: "0123456789abcdef"}, "longer than 15 bytes"},
		{Config{HostIf: "egress0"}, `both ends of the node path are named "egress0"`},
		{Config{Dev: "overlay0"}, `dev "overlay0" is the node path itself`},
	} {
		err := tc.c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}

// TestNativeDropChain: a forward chain with policy drop written with nft
// (inet family) gets the accept rules too, as `nft` writes them (listed
// back without a trace of a foreign encoding); with NoHostAccept Setup
// names the nft commands, and accepts the operator's own rules.
func TestNativeDropChain(t *testing.T) {
	n := newNode(t)
	nstest.Run(t, n.hostName, "nft", "add table inet filter; add chain inet filter forward { type filter hook forward priority 0; policy drop; }")
	before := n.snapshot()
	st, _, err := n.setup(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := nstest.Run(t, n.hostName, "nft", "list", "chain", "inet", "filter", "forward")
	for _, want := range []string{
		`ip saddr 198.51.100.0/24 counter packets 0 bytes 0 accept comment "overlaynet-egress accept from 198.51.100.0/24"`,
		`ip daddr 198.51.100.0/24 counter packets 0 bytes 0 accept comment "overlaynet-egress accept to 198.51.100.0/24"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("inet filter forward lacks %q:\n%s", want, out)
		}
	}
	if len(st.HostAccept) != 1 || st.HostAccept[0].Table != "filter" || st.HostAccept[0].Family.String() != "inet" {
		t.Errorf("host accept %+v", st.HostAccept)
	}
	if err := n.teardown(st); err != nil {
		t.Fatal(err)
	}
	if got := n.snapshot(); got != before {
		t.Errorf("after teardown:\n%s\nbefore:\n%s", got, before)
	}

	_, _, err = n.setup(Config{NoHostAccept: true}, nil)
	for _, want := range []string{
		`"nft add rule inet filter forward ip saddr 198.51.100.0/24 accept" in chain inet filter forward`,
		`"nft add rule inet filter forward ip daddr 198.51.100.0/24 accept" in chain inet filter forward`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %v lacks %q", err, want)
		}
	}
	if got := n.snapshot(); got != before {
		t.Errorf("a refused Setup changed:\n%s", got)
	}
	// The operator adds them, as the refusal says (one of them counted).
	nstest.Run(t, n.hostName, "nft", "add rule inet filter forward ip saddr 198.51.100.0/24 accept")
	nstest.Run(t, n.hostName, "nft", "add rule inet filter forward ip daddr 198.51.100.0/24 counter accept")
	st, _, err = n.setup(Config{NoHostAccept: true}, nil)
	if err != nil || len(st.HostAccept) != 0 {
		t.Fatalf("Setup with the operator's rules: %+v, %v", st, err)
	}
	if err := n.teardown(st); err != nil {
		t.Fatal(err)
	}
}

// TestEgressDevChoice: without Config.Dev the egress device is the default
// route's (here not the underlay device), and masquerade applies there.
func TestEgressDevChoice(t *testing.T) {
	n := newNode(t)
	nstest.Run(t, n.hostName, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
	nstest.Run(t, n.hostName, "ip", "addr", "add", "203.0.113.2/24", "dev", "up0")
	nstest.Run(t, n.hostName, "ip", "link", "set", "up0", "up")
	nstest.Run(t, n.hostName, "ip", "link", "set", "up1", "up")
	nstest.Run(t, n.hostName, "ip", "route", "add", "default", "via", "203.0.113.1")
	st, _, err := n.setup(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dev != "up0" {
		t.Errorf("egress device %q, want up0 (the default route's)", st.Dev)
	}
	if out := nstest.Run(t, n.hostName, "nft", "list", "table", "inet", "overlaynet-egress"); !strings.Contains(out, `oifname "up0" counter packets 0 bytes 0 masquerade`) {
		t.Errorf("masquerade rule:\n%s", out)
	}
	if err := n.teardown(st); err != nil {
		t.Fatal(err)
	}
}

// failEach makes Setup fail after each of steps in turn: every time it
// reports the step, hands back no state, and leaves snapshot as before.
func (n *node) failEach(t *testing.T, steps []string, snapshot func() string, before string) {
	t.Helper()
	for _, s := range steps {
		t.Run(s, func(t *testing.T) {
			n.p.hook = func(x string) error {
				if x == s {
					return errors.New("injected")
				}
				return nil
			}
			defer func() { n.p.hook = nil }()
			st, undo, err := n.setup(Config{}, nil)
			if err == nil || !strings.Contains(err.Error(), "egress: setup step "+s+": injected") || st != nil || undo != nil {
				t.Fatalf("Setup failing at %s: %v, %v", s, err, st)
			}
			if got := snapshot(); got != before {
				t.Errorf("after a failure at %s:\n%s\nbefore:\n%s", s, got, before)
			}
		})
	}
}
