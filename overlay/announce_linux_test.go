package overlay

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

func TestGarpFrame(t *testing.T) {
	mac, _ := ethaddr.Parse("02:42:c6:33:64:07")
	got := garpFrame(mac, netip.MustParseAddr("198.51.100.7"))
	want, _ := hex.DecodeString("" +
		"ffffffffffff" + "0242c6336407" + "0806" + // Ethernet: broadcast, from mac, ARP
		"0001" + "0800" + "06" + "04" + "0001" + // Ethernet/IPv4, request
		"0242c6336407" + "c6336407" + // sender mac, ip
		"000000000000" + "c6336407") // target: unknown mac, the same ip
	if !bytes.Equal(got, want) {
		t.Fatalf("frame\n got %x\nwant %x", got, want)
	}
}

// TestAttachAnnounces attaches a container whose MAC the bridge has learned
// behind the vxlan port (as after a move from another node) and whose IP a
// local neighbour has cached at an old MAC: the attach's gratuitous ARP must
// move the bridge entry to the container's port and refresh the cache,
// before the container sends anything of its own.
func TestAttachAnnounces(t *testing.T) {
	tn := newTestNode(t, "an", testUnderlay, nil)
	tn.mustCreate(testConfig("192.0.2.2"))
	tn.mustAttach(AttachRequest{Name: "watchns", IP: netip.MustParsePrefix("198.51.100.3/24")})

	const ip, newMAC, oldMAC = "198.51.100.7", "02:42:c6:33:64:07", "02:00:00:00:99:07"
	runIn(t, tn.path("overns"), "bridge", "fdb", "add", newMAC, "dev", "vxlan1", "master", "dynamic")
	runIn(t, tn.path("watchns"), "ip", "neigh", "replace", ip, "lladdr", oldMAC, "dev", "eth0", "nud", "stale")
	if out := runIn(t, tn.path("overns"), "bridge", "fdb", "show", "br", "br0"); !strings.Contains(out, newMAC+" dev vxlan1 master br0") {
		t.Fatalf("setup: no learned-like entry behind vxlan1:\n%s", out)
	}

	// IPv6 off in the container, so that no DAD or router solicitation
	// teaches the bridge the MAC's port: only the announcement may.
	ns, err := rtnl.CreateNetNS(tn.netnsDir, "moverns")
	if err != nil {
		t.Fatal(err)
	}
	ns.Close()
	runIn(t, tn.path("moverns"), "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")

	ep := tn.mustAttach(AttachRequest{Name: "moverns", IP: netip.MustParsePrefix(ip + "/24")})
	if ep.MAC.String() != newMAC {
		t.Fatalf("endpoint MAC %s, want %s", ep.MAC, newMAC)
	}
	var fdb []struct {
		MAC    string `json:"mac"`
		IfName string `json:"ifname"`
	}
	mustJSON(t, runIn(t, tn.path("overns"), "bridge", "-j", "fdb", "show", "br", "br0"), &fdb)
	port := ""
	for _, e := range fdb {
		if e.MAC == newMAC {
			port = e.IfName
		}
	}
	if port != ep.HostIf {
		t.Errorf("after attach the bridge has %s behind %q, want %s", newMAC, port, ep.HostIf)
	}
	var neigh []struct {
		Dst    string `json:"dst"`
		LLAddr string `json:"lladdr"`
	}
	mustJSON(t, runIn(t, tn.path("watchns"), "ip", "-j", "neigh", "show", "to", ip, "dev", "eth0"), &neigh)
	if len(neigh) != 1 || neigh[0].LLAddr != newMAC {
		t.Errorf("the local neighbour's cache for %s: %+v, want lladdr %s", ip, neigh, newMAC)
	}
}
