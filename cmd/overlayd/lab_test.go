package main

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestTwoNodeLab builds the lab's two-node overlay on one machine: two node
// namespaces joined by an underlay veth (192.0.2.2, 192.0.2.3), `overlayd
// create` and `overlayd attach` run inside each node with its own netns and
// state directories and a shared store, then the static ARP and FDB entries
// the lab added by hand (through rtnl), and a real ping from pink on node 1
// to sky on node 2 and back. Then status shows the wiring and reset removes
// everything, records included.
func TestTwoNodeLab(t *testing.T) {
	storeDir := t.TempDir()
	store := "dir:" + storeDir
	n1 := newSimNode(t, "n1", store)
	n2 := newSimNode(t, "n2", store)

	n1.ip("link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", n2.name)
	n1.ip("addr", "add", "192.0.2.2/24", "dev", "u0")
	n2.ip("addr", "add", "192.0.2.3/24", "dev", "u0")
	n1.ip("link", "set", "u0", "up")
	n2.ip("link", "set", "u0", "up")

	out := n1.ok("create", "--local", "192.0.2.2")
	if !strings.Contains(out, "VTEP 192.0.2.2 (--local)") {
		t.Errorf("create output does not explain the VTEP:\n%s", out)
	}
	n2.ok("create", "--local", "192.0.2.3")
	n1.ok("attach", "pink", "--ip", "198.51.100.2/24")
	n2.ok("attach", "--ip", "198.51.100.3/24", "sky") // flags before NAME work too

	// The shared store holds the lab's layout.
	for file, want := range map[string]string{
		"arp/198.51.100.2":      "02:42:c6:33:64:02",
		"fdb/02:42:c6:33:64:02": "192.0.2.2",
		"arp/198.51.100.3":      "02:42:c6:33:64:03",
		"fdb/02:42:c6:33:64:03": "192.0.2.3",
	} {
		data, err := os.ReadFile(filepath.Join(storeDir, file))
		if err != nil || strings.TrimSpace(string(data)) != want {
			t.Errorf("store %s = %q, %v; want %q", file, data, err, want)
		}
	}

	// Static wiring, as the lab did by hand: on each node, the remote
	// container's ARP entry and its FDB entry to the remote VTEP.
	wire := func(n *simNode, ip string, mac string, vtep string) {
		t.Helper()
		ns, err := rtnl.OpenNamedNetNS(n.dir, "overns")
		if err != nil {
			t.Fatal(err)
		}
		defer ns.Close()
		c, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		vx, err := c.LinkByName("vxlan1")
		if err != nil {
			t.Fatal(err)
		}
		m, err := ethaddr.Parse(mac)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.NeighAdd(rtnl.ARPEntry{Ifindex: vx.Index, IP: netip.MustParseAddr(ip), MAC: m}.Message()); err != nil {
			t.Fatalf("neigh add %s on %s: %v", ip, n.name, err)
		}
		fdb := rtnl.FDBEntry{Ifindex: vx.Index, MAC: m, Dst: netip.MustParseAddr(vtep), VNI: 42, Port: 4789}
		if err := c.NeighReplace(fdb.Message()); err != nil {
			t.Fatalf("fdb replace %s on %s: %v", mac, n.name, err)
		}
	}
	wire(n1, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	wire(n2, "198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")

	ping := exec.Command("nsenter", "--net="+filepath.Join(n1.dir, "pink"), "ping", "-c1", "-W2", "198.51.100.3")
	if out, err := ping.CombinedOutput(); err != nil {
		t.Fatalf("ping from pink (node 1) to sky (node 2): %v\n%s\nnode 1 status:\n%s", err, out, n1.ok("status"))
	} else if !strings.Contains(string(out), "1 received") {
		t.Fatalf("ping: no reply:\n%s", out)
	}
	// The echo crossed the underlay: node 2's vxlan received and sent it.
	link := n2.mustIn("overns", "ip", "-s", "-j", "link", "show", "vxlan1")
	var stats []struct {
		Stats64 struct {
			RX struct{ Packets int } `json:"rx"`
			TX struct{ Packets int } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(link), &stats); err != nil || len(stats) != 1 {
		t.Fatalf("vxlan1 stats: %v\n%s", err, link)
	}
	if s := stats[0].Stats64; s.RX.Packets < 1 || s.TX.Packets < 1 {
		t.Errorf("node 2 vxlan1 rx %d tx %d packets, want >= 1 each", s.RX.Packets, s.TX.Packets)
	}

	// status shows the overlay, the endpoint and the wiring with NUD states.
	var st overlay.Status
	if err := json.Unmarshal([]byte(n1.ok("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Overlay.VTEP != netip.MustParseAddr("192.0.2.2") || st.Overlay.VTEPSource != "--local" || st.Overlay.UnderlayDev != "u0" {
		t.Errorf("status overlay = %+v", st.Overlay)
	}
	if len(st.Endpoints) != 1 || st.Endpoints[0].Name != "pink" || st.Endpoints[0].KernelPeerIndex != st.Endpoints[0].PeerIndex ||
		st.Endpoints[0].MAC.String() != "02:42:c6:33:64:02" || len(st.Endpoints[0].Problems) != 0 {
		t.Errorf("status endpoints = %+v", st.Endpoints)
	}
	foundNeigh := false
	for _, nb := range st.Neighbors {
		foundNeigh = foundNeigh || nb.IP.String() == "198.51.100.3" && nb.MAC.String() == "02:42:c6:33:64:03" && nb.State == "PERMANENT"
	}
	foundFDB := false
	for _, f := range st.FDB {
		foundFDB = foundFDB || f.MAC.String() == "02:42:c6:33:64:03" && f.VTEP.String() == "192.0.2.3" && f.State == "PERMANENT"
	}
	if !foundNeigh || !foundFDB || len(st.Problems) != 0 {
		t.Errorf("status: neighbours %+v fdb %+v problems %q", st.Neighbors, st.FDB, st.Problems)
	}
	human := n1.ok("status")
	for _, want := range []string{"192.0.2.2, chosen by --local", "vni 42 port 4789", "proxy l2miss l3miss nolearning",
		"pink", "ve-pink", "02:42:c6:33:64:02", "198.51.100.2/24", "198.51.100.3", "PERMANENT", "192.0.2.3"} {
		if !strings.Contains(human, want) {
			t.Errorf("status does not show %q:\n%s", want, human)
		}
	}
	if strings.Contains(human, "PROBLEMS") {
		t.Errorf("status reports problems:\n%s", human)
	}

	// reset on both nodes: nothing of overlayd left, records gone.
	n1.ok("reset")
	n2.ok("reset")
	for _, n := range []*simNode{n1, n2} {
		if names, _ := rtnl.ListNetNS(n.dir); len(names) != 0 {
			t.Errorf("after reset, %s still has namespaces %q", n.name, names)
		}
		if got := linkSummary(n.ip("-o", "link", "show")); len(strings.Fields(got)) != 2 {
			t.Errorf("after reset, node %s has links %s (want lo and u0)", n.name, got)
		}
	}
	for _, sub := range []string{"arp", "fdb"} {
		if ents, _ := os.ReadDir(filepath.Join(storeDir, sub)); len(ents) != 0 {
			t.Errorf("after reset, store %s has %v", sub, ents)
		}
	}
	if out := nstest.Run(t, "", "ip", "netns", "list"); strings.Contains(out, "overns") || strings.Contains(out, "pink") {
		t.Errorf("ip netns list shows overlayd's namespaces:\n%s", out)
	}
}

// waitFor polls cond every 50 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pingOnce pings dst once from container ctr of n, waiting one second.
func pingOnce(n *simNode, ctr, dst string) (string, error) {
	out, err := exec.Command("nsenter", "--net="+filepath.Join(n.dir, ctr), "ping", "-c1", "-W1", dst).CombinedOutput()
	return string(out), err
}

// remoteEntries reports whether n's vxlan has the PERMANENT neighbour entry
// ip -> mac and the FDB entry mac -> vtep, both programmed by overlayd.
func remoteEntries(n *simNode, ip, mac, vtep string) (neigh, fdb bool) {
	nout, _ := n.in("overns", "ip", "neigh", "show", "dev", "vxlan1", "to", ip)
	fout, _ := n.in("overns", "bridge", "fdb", "show", "dev", "vxlan1")
	neigh = strings.Contains(nout, ip+" lladdr "+mac+" PERMANENT proto 214")
	fdb = regexp.MustCompile(regexp.QuoteMeta(mac) + ` dst ` + regexp.QuoteMeta(vtep) + ` .*self extern_learn permanent`).MatchString(fout)
	return neigh, fdb
}
