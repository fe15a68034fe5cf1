package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// hostileRecord is a record a member node writes into the shared store
// that no node may use, and the reason it is rejected for.
type hostileRecord struct {
	ip, mac, vtep string
	why           string // the reason label of overlayd_records_rejected_total
}

// hostileRecords is the hostile writer's set (issue 23) on the overlay
// 198.51.100.0/24 (gateway .1) whose container 198.51.100.3 lives on node
// 192.0.2.3: VTEPs loopback, unspecified, multicast, broadcast, a
// container's address and of the wrong family; the subnet's network,
// broadcast and gateway addresses; a multicast MAC.
func hostileRecords() []hostileRecord {
	return []hostileRecord{
		{"198.51.100.20", "02:42:c6:33:64:14", "127.0.0.1", "vtep_loopback"},
		{"198.51.100.21", "02:42:c6:33:64:15", "0.0.0.0", "vtep_unspecified"},
		{"198.51.100.22", "02:42:c6:33:64:16", "224.0.0.1", "vtep_multicast"},
		{"198.51.100.23", "02:42:c6:33:64:17", "255.255.255.255", "vtep_broadcast"},
		{"198.51.100.24", "02:42:c6:33:64:18", "198.51.100.3", "vtep_in_overlay"},
		{"198.51.100.25", "02:42:c6:33:64:19", "2001:db8::9", "vtep_family"},
		{"198.51.100.0", "02:42:c6:33:64:1a", "192.0.2.3", "ip_network"},
		{"198.51.100.255", "02:42:c6:33:64:1b", "192.0.2.3", "ip_broadcast"},
		{"198.51.100.1", "02:42:c6:33:64:1c", "192.0.2.3", "ip_gateway"},
		{"198.51.100.26", "01:00:5e:00:00:1a", "192.0.2.3", "mac_not_unicast"},
	}
}

// Sizes of the hostile writer's junk.
const (
	hostileJunkKeys = 5000
	hugeValueLen    = 424 << 10 // the single 424 KB log line of issue 23
	hugeMarker      = "HUGE-VALUE-NEVER-LOGGED"
)

// hostileKeys is every key the hostile writer puts, relative to the
// overlay's root in the store: the records, a record over 128 bytes
// (198.51.100.27, 424 KB) and 5,000 junk keys whose names are no address
// (over 200 bytes each, to see them cut in the log).
func hostileKeys() map[string]string {
	kv := map[string]string{}
	for _, h := range hostileRecords() {
		kv["arp/"+h.ip] = h.mac
		kv["fdb/"+h.mac] = h.vtep
	}
	kv["arp/198.51.100.27"] = strings.Repeat(hugeMarker, hugeValueLen/len(hugeMarker))
	pad := strings.Repeat("J", 200)
	for i := range hostileJunkKeys {
		kv[fmt.Sprintf("arp/junk-%d-%s", i, pad)] = "not a MAC at all"
	}
	return kv
}

// hostileLab is an overlay under a hostile writer: node 1 (192.0.2.2,
// container c1 198.51.100.2) is the victim, node 2 (192.0.2.3, c2
// 198.51.100.3) an honest node, node 3 (192.0.2.4, c3 198.51.100.4) a node
// that departs; put writes keys into the shared store as a member node can.
type hostileLab struct {
	n1, n2, n3 *simNode
	d1         *daemon
	put        func(t *testing.T, kv map[string]string)
}

// TestHostileWriterDirStore: the hostile writer's set planted in the
// directory store while the daemons run. See testHostileWriter.
func TestHostileWriterDirStore(t *testing.T) {
	l := newSecLab(t, "")
	n1, n2, n3 := l.addNode(), l.addNode(), l.addNode()
	root := strings.TrimPrefix(l.store, "dir:")
	put := func(t *testing.T, kv map[string]string) {
		for k, v := range kv {
			if err := os.WriteFile(filepath.Join(root, k), []byte(v+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	testHostileWriter(t, &hostileLab{n1: n1, n2: n2, n3: n3, put: put})
}

// testHostileWriter: with honest containers on three nodes and the
// daemons of nodes 1 and 2 running, the hostile writer's set is planted,
// and node 1's containers send to every hostile address (misses). Then on
// node 1: no neighbour or FDB entry of a hostile record is in the kernel
// and no hostile VTEP in the allowlist; every rejection is counted by its
// reason (overlayd_records_rejected_total); over at least 10 s from the
// planting its log holds at most 100 lines and 64 KiB, none of the huge
// value; the honest record is programmed and answers; node 3 departs and
// leaves node 1's allowlist; status reports none of the (absent) hostile
// entries, and does report one planted in the kernel by hand.
func testHostileWriter(t *testing.T, l *hostileLab) {
	l.n1.ok("attach", "c1", "--ip", "198.51.100.2/24")
	l.n2.ok("attach", "c2", "--ip", "198.51.100.3/24")
	l.n3.ok("attach", "c3", "--ip", "198.51.100.4/24")
	l.d1 = l.n1.startDaemon("--metrics", "127.0.0.1:9477")
	l.n2.startDaemon()
	warm(t, l.n1, "c1", "198.51.100.3")
	start, from := time.Now(), len(l.d1.String())
	l.put(t, hostileKeys())
	t.Logf("planted %d keys in %v", len(hostileKeys()), time.Since(start).Round(time.Millisecond))
	for _, h := range hostileRecords() {
		pingOnce(l.n1, "c1", h.ip) // a miss each (answered or not)
	}
	time.Sleep(time.Second) // the misses' lookups, the allowlist's listings
	l.checkKernel(t)
	l.checkAllowlist(t, "192.0.2.2", "192.0.2.3", "192.0.2.4")
	l.checkCounted(t)
	if out, err := pingOnce(l.n1, "c1", "198.51.100.3"); err != nil || !programmed(l.n1, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3") {
		t.Errorf("the honest record is not programmed and answering on node 1: %v\n%s", err, out)
	}
	l.n3.ok("reset")
	if !waitFor(5*time.Second, func() bool { return !slices.Contains(addrs(nodeStatus(t, l.n1).Guard.Allowlist), "192.0.2.4") }) {
		t.Errorf("node 3 departed; node 1 still allows it: %v", nodeStatus(t, l.n1).Guard.Allowlist)
	}
	for _, p := range nodeStatus(t, l.n1).Problems {
		if strings.Contains(p, "no record may hold it") || strings.Contains(p, "no node may have it") {
			t.Errorf("status reports a hostile entry: %s", p)
		}
	}
	if d := 12*time.Second - time.Since(start); d > 0 {
		time.Sleep(d) // a window of at least 10 s of the daemon's log
	}
	checkLogBounded(t, l.d1.String()[from:], time.Since(start))
	checkStatusFlags(t, l.n1)
}

// programmed reports whether n's vxlan holds the neighbour entry ip -> mac
// and the FDB entry mac -> vtep.
func programmed(n *simNode, ip, mac, vtep string) bool {
	neigh, fdb := n.vxlanEntries()
	return slices.ContainsFunc(neigh, func(e kernelNeigh) bool { return e.Dst == ip && e.LLAddr == mac }) &&
		slices.ContainsFunc(fdb, func(e kernelFDB) bool { return e.MAC == mac && e.Dst == vtep })
}

// kernelNeigh and kernelFDB are `ip -j neigh` and `bridge -j fdb` output.
type kernelNeigh struct {
	Dst    string `json:"dst"`
	LLAddr string `json:"lladdr"`
}

type kernelFDB struct {
	MAC string `json:"mac"`
	Dst string `json:"dst"`
}

// vxlanEntries lists n's vxlan's neighbour and FDB entries.
func (n *simNode) vxlanEntries() ([]kernelNeigh, []kernelFDB) {
	n.t.Helper()
	var neigh []kernelNeigh
	var fdb []kernelFDB
	if err := json.Unmarshal([]byte(n.mustIn("overns", "ip", "-j", "neigh", "show", "dev", "vxlan1")), &neigh); err != nil {
		n.t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(n.mustIn("overns", "bridge", "-j", "fdb", "show", "dev", "vxlan1")), &fdb); err != nil {
		n.t.Fatal(err)
	}
	return neigh, fdb
}

// checkKernel: node 1's vxlan has no entry of a hostile record.
func (l *hostileLab) checkKernel(t *testing.T) {
	t.Helper()
	neigh, fdb := l.n1.vxlanEntries()
	for _, h := range append(hostileRecords(), hostileRecord{ip: "198.51.100.27"}) {
		for _, e := range neigh {
			if e.Dst == h.ip || (h.mac != "" && e.LLAddr == h.mac) {
				t.Errorf("neighbour entry of the hostile record %s %s %s (%s): %+v", h.ip, h.mac, h.vtep, h.why, e)
			}
		}
		for _, e := range fdb {
			if h.mac != "" && e.MAC == h.mac {
				t.Errorf("FDB entry of the hostile record %s %s %s (%s): %+v", h.ip, h.mac, h.vtep, h.why, e)
			}
		}
	}
	for _, e := range fdb {
		if slices.ContainsFunc(hostileRecords(), func(h hostileRecord) bool { return h.vtep == e.Dst && strings.HasPrefix(h.why, "vtep_") }) {
			t.Errorf("FDB entry toward a hostile VTEP: %+v", e)
		}
	}
}

// checkAllowlist waits up to 5 s for node 1's allowlist to be want.
func (l *hostileLab) checkAllowlist(t *testing.T, want ...string) {
	t.Helper()
	var got []string
	if !waitFor(5*time.Second, func() bool {
		got = addrs(nodeStatus(t, l.n1).Guard.Allowlist)
		return slices.Equal(got, want)
	}) {
		t.Errorf("node 1's allowlist %v, want %v", got, want)
	}
}

// checkCounted: node 1's metrics count a rejection of every reason of the
// set, the oversized value and the junk (at least one each; the junk at
// least once per key).
func (l *hostileLab) checkCounted(t *testing.T) {
	t.Helper()
	m := l.n1.scrape("127.0.0.1:9477")
	want := map[string]int{"oversized": 1, "malformed": hostileJunkKeys}
	for _, h := range hostileRecords() {
		want[h.why] = 1
	}
	for why, least := range want {
		var n int
		prefix := fmt.Sprintf("overlayd_records_rejected_total{reason=%q} ", why)
		for line := range strings.SplitSeq(m, "\n") {
			if v, ok := strings.CutPrefix(line, prefix); ok {
				fmt.Sscan(v, &n)
			}
		}
		if n < least {
			t.Errorf("%s: %d rejections counted, want at least %d\n%s", why, n, least, grepLines(m, "overlayd_records_rejected"))
		}
	}
}

// checkLogBounded: the daemon's log over the window holds at most 100
// lines and 64 KiB, and nothing of the huge value.
func checkLogBounded(t *testing.T, log string, window time.Duration) {
	t.Helper()
	lines := strings.Count(log, "\n")
	t.Logf("node 1's daemon logged %d lines, %d bytes in %v under the hostile writer", lines, len(log), window.Round(time.Second))
	if lines > 100 || len(log) > 64<<10 || strings.Contains(log, hugeMarker) {
		head := log
		if len(head) > 4096 {
			head = head[:4096] + "..."
		}
		t.Errorf("the daemon logged %d lines, %d bytes in %v (want at most 100 lines, 64 KiB, none of the huge value):\n%s", lines, len(log), window, head)
	}
}

// checkStatusFlags: a neighbour entry for the gateway and an FDB entry
// toward 255.255.255.255, put on node 1's vxlan by hand (without the
// daemon's marks: reconcile leaves them), are PROBLEMS of status.
func checkStatusFlags(t *testing.T, n *simNode) {
	t.Helper()
	n.mustIn("overns", "ip", "neigh", "replace", "198.51.100.1", "lladdr", "02:42:c6:33:64:1c", "dev", "vxlan1", "nud", "permanent")
	n.mustIn("overns", "bridge", "fdb", "append", "02:42:c6:33:64:17", "dev", "vxlan1", "dst", "255.255.255.255", "self", "permanent")
	st := nodeStatus(t, n)
	for _, want := range []string{"neighbour 198.51.100.1 lladdr 02:42:c6:33:64:1c on vxlan1: no record may hold it (ip_gateway)",
		"FDB 02:42:c6:33:64:17 dst 255.255.255.255 on vxlan1: no record may hold it (vtep_broadcast)"} {
		if !slices.ContainsFunc(st.Problems, func(p string) bool { return strings.HasPrefix(p, want) }) {
			t.Errorf("status does not report %q: %q", want, st.Problems)
		}
	}
	if text := n.ok("status"); !strings.Contains(text, "PROBLEMS") || !strings.Contains(text, "(ip_gateway)") {
		t.Errorf("status text does not list the gateway's entry under PROBLEMS:\n%s", text)
	}
	n.mustIn("overns", "ip", "neigh", "del", "198.51.100.1", "dev", "vxlan1")
	n.mustIn("overns", "bridge", "fdb", "del", "02:42:c6:33:64:17", "dev", "vxlan1", "dst", "255.255.255.255", "self")
}
