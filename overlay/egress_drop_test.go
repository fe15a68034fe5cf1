package overlay

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/egress"
)

// dockerForward makes the node's filter FORWARD policy drop with
// iptables-nft, with the chains Docker adds in front of it.
func dockerForward(tn *testNode) {
	for _, args := range [][]string{
		{"-N", "DOCKER-USER"},
		{"-N", "DOCKER-ISOLATION-STAGE-1"},
		{"-A", "FORWARD", "-j", "DOCKER-USER"},
		{"-A", "FORWARD", "-j", "DOCKER-ISOLATION-STAGE-1"},
		{"-A", "FORWARD", "-o", "docker0", "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", "docker0", "!", "-o", "docker0", "-j", "ACCEPT"},
		{"-A", "DOCKER-USER", "-j", "RETURN"},
		{"-A", "DOCKER-ISOLATION-STAGE-1", "-j", "RETURN"},
		{"-P", "FORWARD", "DROP"},
	} {
		runIn(tn.t, tn.hostPath(), "iptables-nft", args...)
	}
}

// TestEgressForwardDrop: on nodes whose filter FORWARD policy is drop (as
// Docker leaves it), create appends the two documented accept rules to
// that chain (listed by iptables), everything of TestEgress works, and
// reset removes exactly those rules.
func TestEgressForwardDrop(t *testing.T) {
	lab := newEgressLab(t, dockerForward)
	// Docker's rules count the test's traffic: rulesets are compared
	// without counter values (nft -s).
	before := make([]string, 2)
	for i, tn := range lab.nodes {
		before[i] = tn.ruleset(true)
	}
	lab.up(&egress.Config{})
	lab.check()
	for i, tn := range lab.nodes {
		out := runIn(t, tn.hostPath(), "iptables-nft", "-S", "FORWARD")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 2 ||
			lines[len(lines)-2] != `-A FORWARD -s 198.51.100.0/24 -m comment --comment "overlaynet-egress accept from 198.51.100.0/24" -j ACCEPT` ||
			lines[len(lines)-1] != `-A FORWARD -d 198.51.100.0/24 -m comment --comment "overlaynet-egress accept to 198.51.100.0/24" -j ACCEPT` {
			t.Errorf("node %d iptables -S FORWARD:\n%s", i+1, out)
		}
		st, err := tn.status()
		if err != nil {
			t.Fatal(err)
		}
		var accepted uint64
		for _, r := range st.Egress.Rules {
			if r.Chain == "ip filter FORWARD" {
				accepted += r.Packets
			}
		}
		if len(st.Egress.Rules) != 3 || accepted == 0 || len(st.Problems) != 0 {
			t.Errorf("node %d egress rules %+v, problems %q", i+1, st.Egress.Rules, st.Problems)
		}
		// Again: no rule added twice.
		mid := tn.ruleset(false)
		tn.mustCreate(egressConfig(egressVTEPs[i], &egress.Config{}))
		if again := tn.ruleset(false); again != mid {
			t.Errorf("node %d: a second create changed the ruleset:\n%s\n---\n%s", i+1, mid, again)
		}
	}
	for i, tn := range lab.nodes {
		if err := tn.reset(); err != nil {
			t.Fatal(err)
		}
		if after := tn.ruleset(true); after != before[i] {
			t.Errorf("node %d ruleset after reset differs:\nbefore:\n%s\nafter:\n%s", i+1, before[i], after)
		}
	}
}

// TestEgressForwardDropRefused: with NoHostAccept, create refuses on such
// a node, naming the chain and both missing rules, and leaves nothing
// behind; once the operator adds the rules (with a comment of their own),
// create succeeds, egress works, and reset leaves the operator's rules.
func TestEgressForwardDropRefused(t *testing.T) {
	lab := newEgressLab(t, dockerForward)
	e := &egress.Config{NoHostAccept: true}
	tn := lab.nodes[0]
	before := tn.ruleset(false)
	links := tn.links("")
	_, err := tn.create(egressConfig(egressVTEPs[0], e))
	if err == nil {
		t.Fatal("create succeeded on a FORWARD policy drop host with no-host-accept")
	}
	for _, want := range []string{
		`"iptables -A FORWARD -s 198.51.100.0/24 -j ACCEPT" in chain ip filter FORWARD`,
		`"iptables -A FORWARD -d 198.51.100.0/24 -j ACCEPT" in chain ip filter FORWARD`,
		"forward policy is drop",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if after := tn.ruleset(false); after != before {
		t.Errorf("refused create changed the ruleset:\n%s", after)
	}
	if l := tn.links(""); !slices.Equal(l, links) {
		t.Errorf("refused create left links: %v -> %v", links, l)
	}
	if names := tn.netnsNames(); len(names) != 0 || len(tn.stateFiles()) != 0 {
		t.Errorf("refused create left namespaces %v, state %v", names, tn.stateFiles())
	}

	for _, n := range lab.nodes {
		runIn(t, n.hostPath(), "iptables-nft", "-A", "FORWARD", "-s", "198.51.100.0/24", "-m", "comment", "--comment", "ops: overlay out", "-j", "ACCEPT")
		runIn(t, n.hostPath(), "iptables-nft", "-A", "FORWARD", "-d", "198.51.100.0/24", "-j", "ACCEPT")
	}
	before = tn.ruleset(true)
	lab.up(e)
	lab.check()
	st, err := tn.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Egress.Rules) != 1 || len(st.Problems) != 0 {
		t.Errorf("egress rules %+v (want the masquerade rule only), problems %q", st.Egress.Rules, st.Problems)
	}
	for _, n := range lab.nodes {
		if err := n.reset(); err != nil {
			t.Fatal(err)
		}
	}
	if after := tn.ruleset(true); after != before {
		t.Errorf("ruleset after reset differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestEgressBadInput: a link subnet overlapping the overlay or the
// underlay, an egress device that does not exist, a second create with
// other egress settings: clear errors, nothing made.
func TestEgressBadInput(t *testing.T) {
	lab := newEgressLab(t, nil)
	tn := lab.nodes[0]
	before := tn.ruleset(false)
	links := tn.links("")
	for _, tc := range []struct {
		name string
		e    egress.Config
		want string
	}{
		{"overlaps overlay", egress.Config{LinkSubnet: netip.MustParsePrefix("198.51.100.0/30")}, "egress link subnet 198.51.100.0/30 overlaps the overlay subnet 198.51.100.0/24"},
		{"overlaps underlay", egress.Config{LinkSubnet: netip.MustParsePrefix("192.0.2.0/30")}, "egress: link subnet 192.0.2.0/30 collides with address 192.0.2.2/24 of ul0, route 192.0.2.0/24 dev ul0"},
		{"host bits", egress.Config{LinkSubnet: netip.MustParsePrefix("10.9.0.1/30")}, "has host bits set"},
		{"too small", egress.Config{LinkSubnet: netip.MustParsePrefix("10.9.0.0/31")}, "want a prefix of /16../30"},
		{"no such dev", egress.Config{Dev: "eth7"}, `egress device "eth7" does not exist in the host namespace`},
		{"same names", egress.Config{HostIf: "x0", OverlayIf: "x0"}, `both ends of the node path are named "x0"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tn.create(egressConfig(egressVTEPs[0], &tc.e))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if after := tn.ruleset(false); after != before {
				t.Errorf("ruleset changed:\n%s", after)
			}
			if l := tn.links(""); !slices.Equal(l, links) {
				t.Errorf("links changed: %v -> %v", links, l)
			}
			if names := tn.netnsNames(); len(names) != 0 || len(tn.stateFiles()) != 0 {
				t.Errorf("left namespaces %v, state %v", names, tn.stateFiles())
			}
		})
	}

	// A default link subnet skips what the node uses.
	runIn(t, tn.hostPath(), "ip", "addr", "add", "169.254.100.1/32", "dev", "ul0")
	tn.mustCreate(egressConfig(egressVTEPs[0], &egress.Config{}))
	st, err := tn.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Egress.Link != netip.MustParsePrefix("169.254.100.4/30") {
		t.Errorf("link %s, want 169.254.100.4/30 (the first /30 is in use)", st.Egress.Link)
	}
	mid := tn.ruleset(false)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{egressConfig(egressVTEPs[0], nil), "state egress: want false, have true"},
		{egressConfig(egressVTEPs[0], &egress.Config{Dev: "ul0"}), "state egress dev: want ul0, have (none)"},
		{egressConfig(egressVTEPs[0], &egress.Config{LinkSubnet: netip.MustParsePrefix("10.9.0.0/30")}), "state egress link subnet: want 10.9.0.0/30, have (chosen)"},
		{egressConfig(egressVTEPs[0], &egress.Config{NoHostAccept: true}), "state egress no-host-accept: want true, have false"},
	} {
		_, err := tn.create(tc.cfg)
		var mm *MismatchError
		if !errors.As(err, &mm) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("second create: %v, want a MismatchError with %q", err, tc.want)
		}
	}
	if after := tn.ruleset(false); after != mid {
		t.Errorf("refused second creates changed the ruleset:\n%s", after)
	}
	if err := tn.reset(); err != nil {
		t.Fatal(err)
	}
	if after := tn.ruleset(false); after != before {
		t.Errorf("ruleset after reset:\n%s", after)
	}
}

// TestEgressRollback: a create failing after egress is set up takes all of
// it back.
func TestEgressRollback(t *testing.T) {
	lab := newEgressLab(t, dockerForward)
	tn := lab.nodes[0]
	before := tn.ruleset(false)
	links := tn.links("")
	fwd := forwarding(t, tn.hostPath())
	tn.node.stepHook = func(step string) error {
		if step == stepEgress {
			return errors.New("injected")
		}
		return nil
	}
	if _, err := tn.create(egressConfig(egressVTEPs[0], &egress.Config{})); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("create: %v", err)
	}
	if after := tn.ruleset(false); after != before {
		t.Errorf("ruleset after rollback:\n%s\nbefore:\n%s", after, before)
	}
	if l := tn.links(""); !slices.Equal(l, links) {
		t.Errorf("links after rollback: %v -> %v", links, l)
	}
	if f := forwarding(t, tn.hostPath()); !mapsEqual(f, fwd) {
		t.Errorf("forwarding after rollback %v, before %v", f, fwd)
	}
	if names := tn.netnsNames(); len(names) != 0 || len(tn.stateFiles()) != 0 {
		t.Errorf("left namespaces %v, state %v", names, tn.stateFiles())
	}
}
