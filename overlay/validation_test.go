package overlay

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestValidationCreatesNothing runs every invalid create and attach through
// a real node and checks that each fails with a clear error and leaves no
// namespace, link, state or record behind.
func TestValidationCreatesNothing(t *testing.T) {
	tn := newTestNode(t, "va", testUnderlay, nil)
	hostLinks := tn.links("")

	badCreates := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"vni 0", func(c *Config) { c.VNI = 0 }, "VNI 0 out of range 1..16777215"},
		{"vni too big", func(c *Config) { c.VNI = 1 << 24 }, "VNI 16777216 out of range"},
		{"port 0", func(c *Config) { c.Port = 0 }, "port 0"},
		{"mtu below 68", func(c *Config) { c.MTU = 67 }, "MTU 67 is below the IPv4 minimum 68"},
		{"mtu above underlay", func(c *Config) { c.MTU = 1451 }, "at most 1450"},
		{"bad gateway prefix", func(c *Config) { c.Gateway = netip.MustParsePrefix("198.51.100.1/31") }, "prefix /31"},
		{"netns slash", func(c *Config) { c.OverlayNetNS = "over/ns" }, "'/'"},
		{"netns dotdot", func(c *Config) { c.OverlayNetNS = "..overns" }, `".."`},
		{"netns too long", func(c *Config) { c.OverlayNetNS = strings.Repeat("o", 256) }, "longer than the kernel's 255"},
		{"local not on node", func(c *Config) { c.Local = netip.MustParseAddr("192.0.2.77") }, "not an address of this node"},
	}
	for _, tc := range badCreates {
		t.Run("create/"+tc.name, func(t *testing.T) {
			cfg := testConfig("192.0.2.2")
			tc.edit(&cfg)
			_, err := tn.create(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("create: %v, want an error containing %q", err, tc.want)
			}
			if names := tn.netnsNames(); len(names) != 0 {
				t.Errorf("netns created: %v", names)
			}
			if got := tn.links(""); !slices.Equal(got, hostLinks) {
				t.Errorf("host links %v, want %v", got, hostLinks)
			}
			if files := tn.stateFiles(); len(files) != 0 {
				t.Errorf("state written: %v", files)
			}
		})
	}

	// Attach before create.
	if _, err := tn.attach(AttachRequest{Name: "c1", IP: netip.MustParsePrefix("198.51.100.2/24")}); !errors.Is(err, ErrNotCreated) ||
		!strings.Contains(err.Error(), "run create first") {
		t.Fatalf("attach before create: %v", err)
	}
	if names := tn.netnsNames(); len(names) != 0 {
		t.Fatalf("attach before create made netns %v", names)
	}

	tn.mustCreate(testConfig("192.0.2.2"))
	tn.mustAttach(AttachRequest{Name: "c1", IP: netip.MustParsePrefix("198.51.100.2/24")})
	base := tn.view()
	var cases []badAttachCase
	for _, c := range badAttachCases() {
		if c.name != "no ip" { // allocates (TestAttachAllocates)
			cases = append(cases, c)
		}
	}
	cases = append(cases, badAttachCase{"duplicate name", func(r *AttachRequest) { r.Name = "c1" }, `"c1" is attached`})
	for _, tc := range cases {
		t.Run("attach/"+tc.name, func(t *testing.T) {
			req := AttachRequest{Name: "c2", IP: netip.MustParsePrefix("198.51.100.3/24")}
			tc.edit(&req)
			_, err := tn.attach(req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("attach: %v, want an error containing %q", err, tc.want)
			}
			tn.sameView(t, base)
		})
	}
	if err := tn.detach("nope"); !errors.Is(err, ErrUnknownEndpoint) {
		t.Errorf("detach of an unknown name: %v", err)
	}
	if err := tn.detach("../x"); err == nil {
		t.Errorf("detach of a bad name succeeded")
	}
}

// TestAttachRefusesContainer: a container namespace that is missing, not a
// network namespace or the node's own, and an interface name the
// container has already, are refused with typed errors before anything is
// made; the container is left as it was.
func TestAttachRefusesContainer(t *testing.T) {
	tn := newTestNode(t, "vc", testUnderlay, nil)
	tn.mustCreate(testConfig("192.0.2.2"))
	notNS := filepath.Join(t.TempDir(), "notns")
	if err := os.WriteFile(notNS, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, busyName := nstest.NetNS(t, "vcb") // a runtime's namespace, with eth0
	busy := filepath.Join(rtnl.DefaultNetNSDir, busyName)
	runIn(t, busy, "ip", "link", "add", "eth0", "type", "bridge")
	named, err := rtnl.CreateNetNS(tn.netnsDir, "named") // overlayd's, with eth0
	if err != nil {
		t.Fatal(err)
	}
	named.Close()
	runIn(t, tn.path("named"), "ip", "link", "add", "eth0", "type", "bridge")
	base := tn.view()
	for _, tc := range []struct {
		name string
		req  AttachRequest
		is   error
		want string
	}{
		{"missing path", AttachRequest{Name: "c1", NetNSPath: "/var/run/netns/ovt-no-such-ns"}, ErrNetNSNotFound, "ovt-no-such-ns"},
		{"regular file", AttachRequest{Name: "c1", NetNSPath: notNS}, ErrNetNSNotFound, notNS + " is not a network namespace"},
		{"mount namespace", AttachRequest{Name: "c1", NetNSPath: "/proc/self/ns/mnt"}, ErrNetNSNotFound, "is not a network namespace"},
		{"the node's own", AttachRequest{Name: "c1", NetNSPath: filepath.Join(rtnl.DefaultNetNSDir, tn.hostName)}, ErrOwnNetNS, "own network namespace"},
		{"interface taken (path)", AttachRequest{Name: "c1", NetNSPath: busy}, ErrInterfaceExists, "eth0 already exists in " + busy},
		{"interface taken (named)", AttachRequest{Name: "named"}, ErrInterfaceExists, "eth0 already exists in " + tn.path("named")},
		{"other interface taken", AttachRequest{Name: "c1", NetNSPath: busy, IfName: "lo"}, ErrInterfaceExists, "lo already exists"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.IP = netip.MustParsePrefix("198.51.100.3/24")
			_, err := tn.attach(tc.req)
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("attach: %v, want an error wrapping %v containing %q", err, tc.is, tc.want)
			}
			tn.sameView(t, base)
			for _, path := range []string{busy, tn.path("named")} {
				if out := runIn(t, path, "ip", "-o", "link", "show", "dev", "eth0"); !strings.Contains(out, "eth0") {
					t.Errorf("eth0 gone from %s", path)
				}
			}
		})
	}
	// CheckNetNS refuses the same namespaces, and accepts a container's.
	if err := CheckNetNS(notNS); !errors.Is(err, ErrNetNSNotFound) {
		t.Errorf("CheckNetNS of a file: %v", err)
	}
	if err := tn.do(func() error { return CheckNetNS(filepath.Join(rtnl.DefaultNetNSDir, tn.hostName)) }); !errors.Is(err, ErrOwnNetNS) {
		t.Errorf("CheckNetNS of the node's own: %v", err)
	}
	if err := tn.do(func() error { return CheckNetNS(busy) }); err != nil {
		t.Errorf("CheckNetNS of a container's: %v", err)
	}
}

// nodeView is what a refused, rolled back or undone attach leaves as it
// was: the node's namespaces, the overlay's links and nftables rules
// (stateless: a counter a packet of another container moved is no
// leftover), the
// links of the namespace "prens" (if any: one that existed before the
// attach), the state and the store's records.
type nodeView struct {
	netns, links, prensLinks, state, store []string
	rules                                  string
}

func (tn *testNode) view() nodeView {
	v := nodeView{netns: tn.netnsNames(), links: tn.links("overns"), state: tn.stateFiles(), store: storeFiles(tn.t, tn.store),
		rules: runIn(tn.t, tn.path("overns"), "nft", "-s", "list", "ruleset")}
	if slices.Contains(v.netns, "prens") {
		v.prensLinks = tn.links("prens")
	}
	return v
}

// sameView reports in t how the node differs from base.
func (tn *testNode) sameView(t *testing.T, base nodeView) {
	t.Helper()
	now := tn.view()
	for _, d := range []struct {
		what      string
		got, want []string
	}{{"netns", now.netns, base.netns}, {"overlay links", now.links, base.links}, {"links in prens", now.prensLinks, base.prensLinks},
		{"state", now.state, base.state}, {"store", now.store, base.store}} {
		if !slices.Equal(d.got, d.want) {
			t.Errorf("%s %v, want %v", d.what, d.got, d.want)
		}
	}
	if now.rules != base.rules {
		t.Errorf("nftables rules in the overlay namespace:\n%s\nwant:\n%s", now.rules, base.rules)
	}
}
