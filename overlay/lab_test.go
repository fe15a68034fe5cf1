package overlay

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestMatchesLab builds one node with the library and the same node with the
// lab's own iproute2 commands (create_overlay.sh with l2miss/l3miss, then
// attach_ctn.sh plus the single-node variant's default route) in a parallel
// set of namespaces, and compares what `ip -d -j link`, `ip -j addr` and
// `ip -j route` read back: kinds, VNI, port, flags, MTU, master, MAC,
// addresses and routes.
func TestMatchesLab(t *testing.T) {
	// The library's node: VTEP from the default route, as the lab's vxlan
	// has no local address either.
	tn := newTestNode(t, "lb", testUnderlay, nil)
	nstest.Run(t, tn.hostName, "ip", "route", "add", "default", "via", "192.0.2.1", "dev", "ul0")
	cfg := DefaultConfig()
	cfg.Learning = true // the lab's vxlan learns
	tn.mustCreate(cfg)
	tn.mustAttach(AttachRequest{Name: "pinkns", IP: netip.MustParsePrefix("198.51.100.2/24")})
	lib := snapshot(t, tn.path("overns"), tn.path("pinkns"))

	// The lab's node, by hand.
	_, labHost := nstest.NetNS(t, "lh")
	_, overns := nstest.NetNS(t, "lo")
	_, pinkns := nstest.NetNS(t, "lp")
	host := func(args ...string) { nstest.Run(t, labHost, "ip", args...) }
	in := func(ns string, args ...string) { nstest.Run(t, ns, "ip", args...) }
	in(overns, "link", "add", "dev", "br0", "type", "bridge")
	in(overns, "addr", "add", "dev", "br0", "198.51.100.1/24")
	// The create_overlay.sh gives the vxlan MTU 1450; without `mtu`
	// this kernel would give it 1500, too big for a 1500-byte underlay.
	host("link", "add", "dev", "vxlan1", "mtu", "1450", "netns", overns, "type", "vxlan", "id", "42", "proxy", "learning", "l2miss", "l3miss", "dstport", "4789")
	in(overns, "link", "set", "vxlan1", "master", "br0")
	in(overns, "link", "set", "br0", "up")
	in(overns, "link", "set", "vxlan1", "up")
	host("link", "add", "dev", "veth1", "mtu", "1450", "netns", overns, "type", "veth", "peer", "name", "eth0", "mtu", "1450", "netns", pinkns)
	in(pinkns, "link", "set", "dev", "eth0", "address", "02:42:c6:33:64:02")
	in(pinkns, "addr", "add", "dev", "eth0", "198.51.100.2/24")
	in(overns, "link", "set", "veth1", "master", "br0")
	in(overns, "link", "set", "veth1", "up")
	in(pinkns, "link", "set", "eth0", "up")
	in(pinkns, "route", "add", "default", "via", "198.51.100.1")
	lab := snapshot(t, filepath.Join(rtnl.DefaultNetNSDir, overns), filepath.Join(rtnl.DefaultNetNSDir, pinkns))

	if len(lab.Overlay) != 3 || len(lab.Container) != 2 || len(lab.CtrRoutes) != 2 || len(lab.BrAddrs) != 1 {
		t.Fatalf("lab read-back incomplete: %+v", lab)
	}
	if diff := cmp.Diff(lab, lib); diff != "" {
		t.Errorf("library node differs from the lab's (-lab +library):\n%s", diff)
	}
}

// labView is the normalised read-back of one node.
type labView struct {
	Overlay   []linkView // bridge, vxlan and the host veth (named "veth")
	Container []linkView
	BrAddrs   []addrView
	CtrAddrs  []addrView
	CtrRoutes []map[string]any
}

type linkView struct {
	Name, Kind, Master string
	MTU                uint32
	Up                 bool
	Address            string // containers only (the bridge and veth MACs are random)
	VNI                uint32
	Port               uint16
	Learning           bool
	Proxy              bool
	L2Miss, L3Miss     bool
}

type addrView struct {
	Family, Local, Scope string
	PrefixLen            int
}

func snapshot(t *testing.T, overlayPath, ctrPath string) labView {
	t.Helper()
	var v labView
	links := func(path string, container bool) []linkView {
		var ls []ipLink
		mustJSON(t, runIn(t, path, "ip", "-d", "-j", "link", "show"), &ls)
		var out []linkView
		for _, l := range ls {
			if l.Name == "lo" && !container {
				continue // the lab never touches the overlay netns loopback
			}
			lv := linkView{Name: l.Name, Kind: l.Info.Kind, Master: l.Master, MTU: l.MTU, Up: l.up()}
			if lv.Kind == "veth" && !container {
				lv.Name = "veth"
			}
			if container {
				lv.Address = l.Address
			}
			if lv.Kind == "vxlan" {
				d := l.Info.Data
				lv.VNI, lv.Port, lv.Learning, lv.Proxy, lv.L2Miss, lv.L3Miss = d.ID, d.Port, d.Learning, d.Proxy, d.L2Miss, d.L3Miss
			}
			out = append(out, lv)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	addrs := func(path, dev string) []addrView {
		var js []struct {
			AddrInfo []struct {
				Family    string `json:"family"`
				Local     string `json:"local"`
				PrefixLen int    `json:"prefixlen"`
				Scope     string `json:"scope"`
			} `json:"addr_info"`
		}
		mustJSON(t, runIn(t, path, "ip", "-j", "-4", "addr", "show", "dev", dev), &js)
		var out []addrView
		for _, l := range js {
			for _, a := range l.AddrInfo {
				out = append(out, addrView{a.Family, a.Local, a.Scope, a.PrefixLen})
			}
		}
		return out
	}
	v.Overlay = links(overlayPath, false)
	v.Container = links(ctrPath, true)
	v.BrAddrs = addrs(overlayPath, "br0")
	v.CtrAddrs = addrs(ctrPath, "eth0")
	if err := json.Unmarshal([]byte(runIn(t, ctrPath, "ip", "-j", "route", "show")), &v.CtrRoutes); err != nil {
		t.Fatal(err)
	}
	return v
}
