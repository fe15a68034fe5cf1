package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDelegatedIPAM: with an "ipam" section the standard host-local plugin
// gives the address (from its range, not this node's blocks); CHECK, STATUS
// and GC reach it too; DEL releases its lease; an IPAM plugin giving an
// address outside the overlay subnet is refused (106) and its address given
// back, nothing left behind.
func TestDelegatedIPAM(t *testing.T) {
	requirePlugins(t)
	n := newNode(t, "dl", "192.0.2.2", "", true)
	before := n.snapshot()
	data := t.TempDir()
	ipamConf := func(subnet, start, end string) map[string]any {
		return map[string]any{"ipam": map[string]any{"type": "host-local", "dataDir": data,
			"ranges": [][]map[string]string{{{"subnet": subnet, "rangeStart": start, "rangeEnd": end}}}}}
	}
	conf := n.conf("1.0.0", ipamConf("198.51.100.0/24", "198.51.100.200", "198.51.100.210"))
	ns := n.containerNS("ctr")
	out := n.ok(call{cmd: "ADD", containerID: "d1", netns: ns, ifname: "eth0", stdin: conf})
	var res addResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 || res.IPs[0].Address != "198.51.100.200/24" {
		t.Fatalf("ADD with host-local: %v\n%s", err, out)
	}
	if a := in(t, ns, "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(a, "198.51.100.200/24") {
		t.Errorf("container eth0: %s", a)
	}
	lease := filepath.Join(data, "ovl", "198.51.100.200")
	if _, err := os.Stat(lease); err != nil {
		t.Fatalf("host-local's lease: %v", err)
	}
	n.ok(call{cmd: "CHECK", containerID: "d1", netns: ns, ifname: "eth0", stdin: withPrev(t, conf, out)})
	n.ok(call{cmd: "DEL", containerID: "d1", netns: ns, ifname: "eth0", stdin: withPrev(t, conf, out)})
	if _, err := os.Stat(lease); !os.IsNotExist(err) {
		t.Errorf("host-local's lease after DEL: %v", err)
	}
	// 1.1.0: STATUS and GC go to host-local too (an older one that does not
	// know them is not an error).
	conf11 := n.conf("1.1.0", ipamConf("198.51.100.0/24", "198.51.100.200", "198.51.100.210"))
	n.ok(call{cmd: "GC", stdin: conf11})
	d := n.startDaemon()
	n.ok(call{cmd: "STATUS", stdin: conf11})
	d.stop(t)

	// An IPAM plugin handing out an address of another subnet.
	bad := n.conf("1.0.0", ipamConf("203.0.113.0/24", "203.0.113.10", "203.0.113.20"))
	n.fails(call{cmd: "ADD", containerID: "d2", netns: ns, ifname: "eth0", stdin: bad}, 106, "no IPv4 address in the overlay subnet")
	if _, err := os.Stat(filepath.Join(data, "ovl", "203.0.113.10")); !os.IsNotExist(err) {
		t.Errorf("host-local's lease of the refused address: %v", err)
	}
	deleteNS(t, n, "ctr")
	if after := n.snapshot(); after != before {
		t.Errorf("left behind:\nbefore: %s\nafter:  %s", before, after)
	}
}
