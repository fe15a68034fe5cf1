package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay"
)

// The dual-stack overlay of the tests: its IPv6 gateway beside the default
// IPv4 one.
const dualGateway6 = "2001:db8:42::1/64"

// dualLab is three nodes of a dual-stack overlay whose underlay devices u0
// hang off a bridge in a netns of their own (the underlay switch, where
// etcd runs when the store is etcd). Each node has 192.0.2.N/24 on u0 (the
// way to etcd) and, on an IPv6 underlay, 2001:db8::N/64 (nodad), which is
// then its VTEP.
type dualLab struct {
	t     testing.TB
	nodes []*simNode
	vteps []string
	ctl   string // the underlay switch's netns
	ds    []*daemon
}

// newDualLab makes the nodes and their overlays (create --gateway both
// families, --local the VTEP) on store (a dir: or etcd URL; "" for a
// directory store shared by the three), after setup has run in the switch's
// netns (etcd started there, say).
func newDualLab(t testing.TB, underlay6 bool, store string, ctl string) *dualLab {
	t.Helper()
	if store == "" {
		store = "dir:" + t.TempDir()
	}
	l := &dualLab{t: t, ctl: ctl}
	for i := range 3 {
		n := newSimNode(t, fmt.Sprintf("ds%d", i+1), store)
		port := fmt.Sprintf("dp%d", i+1)
		n.ip("link", "add", "u0", "type", "veth", "peer", "name", port, "netns", ctl)
		nstest.Run(t, ctl, "ip", "link", "set", port, "master", "ul", "up")
		v4 := fmt.Sprintf("192.0.2.%d", i+2)
		n.ip("addr", "add", v4+"/24", "dev", "u0")
		vtep := v4
		if underlay6 {
			vtep = fmt.Sprintf("2001:db8::%d", i+2)
			n.ip("addr", "add", vtep+"/64", "dev", "u0", "nodad")
		}
		n.ip("link", "set", "u0", "up")
		n.ok("create", "--local", vtep, "--gateway", overlay.DefaultConfig().Gateway.String(), "--gateway", dualGateway6)
		l.nodes, l.vteps = append(l.nodes, n), append(l.vteps, vtep)
	}
	return l
}

// underlaySwitch makes the netns of the underlay switch: a bridge "ul"
// with a fixed MAC holding 192.0.2.1/24.
func underlaySwitch(t testing.TB) string {
	t.Helper()
	_, ctl := nstest.NetNS(t, "dsw")
	nstest.Run(t, ctl, "ip", "link", "add", "ul", "address", "02:00:c0:00:02:01", "type", "bridge")
	nstest.Run(t, ctl, "ip", "addr", "add", "192.0.2.1/24", "dev", "ul")
	nstest.Run(t, ctl, "ip", "link", "set", "ul", "up")
	return ctl
}

// dualCtr is a dual-stack container of the lab, with the addresses attach
// gave it.
type dualCtr struct {
	node     int
	name     string
	ip, ip6  string
	mac      string
	hostVeth string
}

func (c dualCtr) String() string {
	return fmt.Sprintf("%s@node%d(%s %s)", c.name, c.node+1, c.ip, c.ip6)
}

// attach attaches a container named name on node i, its addresses
// allocated, and reads them back from the state directory.
func (l *dualLab) attach(i int, name string) dualCtr {
	l.t.Helper()
	n := l.nodes[i]
	n.ok("attach", name)
	var eps []overlay.Endpoint
	if err := readStatusJSON(n, &eps); err != nil {
		l.t.Fatal(err)
	}
	for _, e := range eps {
		if e.Name == name {
			if !e.IP.IsValid() || !e.IP6.IsValid() {
				l.t.Fatalf("%s on node %d has addresses %v %v, want one of each family", name, i+1, e.IP, e.IP6)
			}
			return dualCtr{node: i, name: name, ip: e.IP.Addr().String(), ip6: e.IP6.Addr().String(), mac: e.MAC.String(), hostVeth: e.HostIf}
		}
	}
	l.t.Fatalf("%s not in node %d's status", name, i+1)
	return dualCtr{}
}

// readStatusJSON reads the endpoints of `overlayd status --json`.
func readStatusJSON(n *simNode, eps *[]overlay.Endpoint) error {
	var st struct {
		Endpoints []overlay.Endpoint `json:"endpoints"`
	}
	if err := unmarshalStatus(n.ok("status", "--json"), &st); err != nil {
		return err
	}
	*eps = st.Endpoints
	return nil
}

// pingPairs pings, from every container, every other one over IPv4 and
// over IPv6, at once, each up to tries attempts of one echo request with
// a one-second wait; it returns the pairs that never answered and how
// many needed more than one attempt.
func (l *dualLab) pingPairs(ctrs []dualCtr, tries int) (failed []string, retried int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range ctrs {
		for _, b := range ctrs {
			if a == b {
				continue
			}
			for _, dst := range []string{b.ip, b.ip6} {
				wg.Go(func() {
					for try := 1; try <= tries; try++ {
						if _, err := l.nodes[a.node].in(a.name, "ping", "-n", "-q", "-c1", "-W1", dst); err == nil {
							if try > 1 {
								mu.Lock()
								retried++
								mu.Unlock()
							}
							return
						}
					}
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%v -> %s", a, dst))
					mu.Unlock()
				})
			}
		}
	}
	wg.Wait()
	slices.Sort(failed)
	return failed, retried
}

// missingEntries lists the remote containers' entries a node lacks: the
// PERMANENT neighbour entries of both addresses (proto 214) and the FDB
// entry of the MAC to its node's VTEP.
func (l *dualLab) missingEntries(ctrs []dualCtr) []string {
	var miss []string
	for i, n := range l.nodes {
		for _, c := range ctrs {
			if c.node == i {
				continue
			}
			ne4, fdb := remoteEntries(n, c.ip, c.mac, l.vteps[c.node])
			ne6, _ := remoteEntries(n, c.ip6, c.mac, l.vteps[c.node])
			if !ne4 || !ne6 || !fdb {
				miss = append(miss, fmt.Sprintf("node%d: %v (neigh %v/%v fdb %v)", i+1, c, ne4, ne6, fdb))
			}
		}
	}
	return miss
}

func (l *dualLab) logs() {
	for i, d := range l.ds {
		l.t.Logf("node%d daemon log:\n%s", i+1, d)
	}
}

// TestDualStackThreeNodes: three nodes of a dual-stack overlay on a
// directory store, daemons in their default (reactive) mode, two
// containers per node with both addresses allocated: every container
// answers every other one's ping and ping -6, over an IPv4 underlay and
// over an IPv6 one (vxlan local and FDB destinations IPv6, MTU 1430);
// each node then holds the remote containers' IPv6 neighbour entries beside
// the IPv4 ones, and resolved both families' misses.
func TestDualStackThreeNodes(t *testing.T) {
	for _, u6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4 underlay", true: "ipv6 underlay"}[u6], func(t *testing.T) {
			l := newDualLab(t, u6, "", underlaySwitch(t))
			var ctrs []dualCtr
			for i := range l.nodes {
				ctrs = append(ctrs, l.attach(i, "pink"), l.attach(i, "sky"))
			}
			for _, n := range l.nodes {
				l.ds = append(l.ds, n.startDaemon("--log-level", "debug", "--metrics", "127.0.0.1:9477"))
			}
			// Reactive: the first solicitation of a pair may be the one its
			// miss consumed: a retry is allowed.
			if failed, retried := l.pingPairs(ctrs, 3); len(failed) > 0 {
				l.logs()
				t.Fatalf("not answered: %v", failed)
			} else {
				t.Logf("%d pairs x 2 families answered, %d after a retry", len(ctrs)*(len(ctrs)-1), retried)
			}
			if m := l.missingEntries(ctrs); len(m) > 0 {
				t.Errorf("entries missing after the pings: %v", m)
			}
			checkDualStackNode(t, l, u6, `overlayd_address_resolutions_total{family="ipv6"} `)
		})
	}
}

// checkDualStackNode checks node 1 of l: its MTU, its vxlan's local
// address on an IPv6 underlay, that its daemon's metric counted (a
// metric line, whose value must not be 0) and that it resolved no
// link-local or multicast address.
func checkDualStackNode(t *testing.T, l *dualLab, u6 bool, counted string) {
	t.Helper()
	n := l.nodes[0]
	link := n.mustIn("overns", "ip", "-d", "link", "show", "vxlan1")
	if wantMTU := map[bool]string{false: "mtu 1450", true: "mtu 1430"}[u6]; !strings.Contains(link, wantMTU) {
		t.Errorf("vxlan1 lacks %s:\n%s", wantMTU, link)
	}
	if u6 && !strings.Contains(link, "local "+l.vteps[0]) {
		t.Errorf("vxlan1 lacks local %s:\n%s", l.vteps[0], link)
	}
	var metrics string
	ok := waitFor(5*time.Second, func() bool {
		metrics = n.scrape("127.0.0.1:9477")
		return strings.Contains(metrics, counted) && !strings.Contains(metrics, counted+"0\n")
	})
	if !ok {
		t.Errorf("%q not counted:\n%s", counted, grepLines(metrics, "overlayd_"))
	}
	for _, line := range strings.Split(l.ds[0].String(), "\n") {
		if strings.Contains(line, "msg=resolved") && (strings.Contains(line, "ip=fe80:") || strings.Contains(line, "ip=ff0")) {
			t.Errorf("a link-local or multicast address resolved: %s", line)
		}
	}
}

// TestDualStackBadInput: a dual-stack node refuses, with nothing changed,
// an IPv6 address outside its prefix, an IPv6 address with a zone, the
// prefix's subnet-router anycast and gateway addresses; an IPv4 overlay
// refuses an IPv6 address; create refuses an IPv6 prefix smaller than an
// address block, an IPv6 gateway alone, and an IPv6 VTEP on an overlay whose
// store records an IPv4 underlay (and the converse), and on the Kubernetes
// store (IPv4 spans at IPv4 VTEPs) an IPv6 gateway or an IPv6 VTEP.
func TestDualStackBadInput(t *testing.T) {
	ctl := underlaySwitch(t)
	l := newDualLab(t, false, "", ctl)
	n := l.nodes[0]
	snap := n.snapshot()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"attach", "c1", "--ip", "2001:db8:43::5/64"}, "outside the overlay's IPv6 prefix 2001:db8:42::/64"},
		{[]string{"attach", "c1", "--ip", "2001:db8:42::5%eth0"}, "zone is not allowed"},
		{[]string{"attach", "c1", "--ip", "2001:db8:42::/64"}, "subnet-router anycast"},
		{[]string{"attach", "c1", "--ip", "2001:db8:42::1/64"}, "IPv6 gateway's address"},
		{[]string{"attach", "c1", "--ip", "2001:db8:42::5/64", "--ip", "2001:db8:43::6/64"}, "IP 2001:db8:43::6 is outside"}, // the last of a family wins
		{[]string{"attach", "c1", "--only", "ipv4", "--ip", "2001:db8:42::5/64"}, "IPv4 address only"},
	} {
		n.expectFailure(t, snap, c.args, c.want)
	}
	// A second node on the same store, each refused before it changes
	// anything.
	other := newSimNode(t, "dsx", n.store)
	other.ip("link", "add", "u0", "type", "veth", "peer", "name", "dpx", "netns", ctl)
	nstest.Run(t, ctl, "ip", "link", "set", "dpx", "master", "ul", "up")
	other.ip("addr", "add", "192.0.2.9/24", "dev", "u0")
	other.ip("addr", "add", "2001:db8::9/64", "dev", "u0", "nodad")
	other.ip("link", "set", "u0", "up")
	osnap := other.snapshot()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"create", "--local", "2001:db8::9", "--gateway", "198.51.100.1/24", "--gateway", dualGateway6},
			"store underlay: want IPv6, have IPv4"},
		{[]string{"create", "--local", "192.0.2.9", "--gateway", "198.51.100.1/24", "--gateway", "2001:db8:42::1/124"},
			"IPv6 prefix 2001:db8:42::/124 (/124) is smaller than one address block (/120)"},
		{[]string{"create", "--local", "192.0.2.9", "--gateway", dualGateway6}, "IPv6-only overlays are not supported"},
		{[]string{"create", "--local", "192.0.2.9"}, "store IPv6 gateway: want (none), have 2001:db8:42::1/64"},
		{[]string{"create", "--local", "192.0.2.9", "--gateway", "198.51.100.1/24", "--gateway", "2001:db8:42::1/64", "--block-bits6", "112"},
			"store IPv6 block bits: want 112, have 120"},
		// The Kubernetes store's containers are IPv4 spans at IPv4 VTEPs.
		{[]string{"create", "--store", "kube:", "--local", "192.0.2.9", "--gateway", "198.51.100.1/24", "--gateway", dualGateway6},
			"IPv6 gateway 2001:db8:42::1/64 refused: create the overlay with an IPv4 gateway only"},
		{[]string{"create", "--store", "kube:", "--local", "2001:db8::9", "--gateway", "198.51.100.1/24"},
			"IPv6 VTEP 2001:db8::9 refused"},
	} {
		other.expectFailure(t, osnap, c.args, c.want)
	}
	// On an IPv4 overlay, an IPv6 address is refused.
	v4 := newSimNode(t, "dsv", "")
	v4.ip("link", "add", "u0", "type", "veth", "peer", "name", "dpv", "netns", ctl)
	v4.ip("addr", "add", "192.0.2.8/24", "dev", "u0")
	v4.ip("link", "set", "u0", "up")
	v4.ok("create", "--local", "192.0.2.8")
	v4.expectFailure(t, v4.snapshot(), []string{"attach", "c1", "--ip", "2001:db8:42::5/64"}, "the overlay has no IPv6 prefix")
}

// unmarshalStatus decodes status --json output.
func unmarshalStatus(s string, v any) error { return json.Unmarshal([]byte(s), v) }
