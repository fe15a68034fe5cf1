package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/rtnl"
)

// vxlanLinks reads the overlay namespace's links of the node (name, kind,
// ifindex, VNI) with `ip -d -j link`.
func vxlanLinks(t *testing.T, n *simNode) []struct {
	Index    int    `json:"ifindex"`
	Name     string `json:"ifname"`
	LinkInfo struct {
		Kind string `json:"info_kind"`
		Data struct {
			ID int `json:"id"`
		} `json:"info_data"`
	} `json:"linkinfo"`
} {
	t.Helper()
	out := n.mustIn("overns", "ip", "-d", "-j", "link", "show")
	var links []struct {
		Index    int    `json:"ifindex"`
		Name     string `json:"ifname"`
		LinkInfo struct {
			Kind string `json:"info_kind"`
			Data struct {
				ID int `json:"id"`
			} `json:"info_data"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return links
}

// TestCreateIdempotentCLI runs create twice (one of each device, egress's
// veth end among them, exit 0),
// then with another VNI: refused with a message naming both VNIs, whether
// the difference is found in the recorded state or on the device itself,
// and the devices are untouched.
func TestCreateIdempotentCLI(t *testing.T) {
	n := newUnderlayNode(t, "id")
	n.ok("create", "--local", "192.0.2.2")
	before := vxlanLinks(t, n)
	n.ok("create", "--local", "192.0.2.2")
	after := vxlanLinks(t, n)
	kinds := map[string]int{}
	for _, l := range after {
		kinds[l.LinkInfo.Kind]++
	}
	if kinds["bridge"] != 1 || kinds["vxlan"] != 1 || kinds["veth"] != 1 || len(after) != 4 {
		t.Errorf("after create twice: links %+v, want lo, one bridge, one vxlan, egress0", after)
	}
	if len(before) != len(after) || before[3] != after[3] || before[2] != after[2] || before[1] != after[1] {
		t.Errorf("second create changed the devices: %+v -> %+v", before, after)
	}
	if names, _ := os.ReadDir(n.dir); len(names) != 1 {
		t.Errorf("netns dir has %v, want overns only", names)
	}

	snap := n.snapshot()
	for _, c := range []struct {
		name  string
		extra []string
		want  []string
	}{
		{"recorded state differs", nil, []string{"state VNI: want 43, have 42"}},
		// A fresh state dir: the difference is found on the device.
		{"device differs", []string{"--state-dir", filepath.Join(t.TempDir(), "state")}, []string{"vxlan1 VNI: want 43, have 42", "nothing changed"}},
	} {
		args := append([]string{"create", "--local", "192.0.2.2", "--vni", "43"}, c.extra...)
		r := n.run(args...)
		if r.code == 0 {
			t.Errorf("%s: create --vni 43 succeeded", c.name)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: message does not say %q: %s", c.name, w, r.stderr)
			}
		}
		if got := n.snapshot(); got != snap {
			t.Errorf("%s: create --vni 43 changed the node:\nbefore:\n%s\nafter:\n%s", c.name, snap, got)
		}
	}
	for _, l := range vxlanLinks(t, n) {
		if l.LinkInfo.Kind == "vxlan" && l.LinkInfo.Data.ID != 42 {
			t.Errorf("vxlan now has VNI %d", l.LinkInfo.Data.ID)
		}
	}
	// A port difference on the device is named too.
	r := n.run("create", "--local", "192.0.2.2", "--port", "4790", "--state-dir", filepath.Join(t.TempDir(), "state"))
	if r.code == 0 || !strings.Contains(r.stderr, "port: want 4790, have 4789") {
		t.Errorf("create --port 4790: exit %d: %s", r.code, r.stderr)
	}
}

// TestValidationCLI runs each invalid create and attach through the binary
// on a real node: non-zero exit, a clear message, and nothing created (no
// namespace, link, store record or state file).
func TestValidationCLI(t *testing.T) {
	n := newUnderlayNode(t, "va")
	createCases := []struct {
		args []string
		want string
	}{
		{[]string{"--vni", "0"}, "--vni 0: out of range 1..16777215"},
		{[]string{"--vni", "16777216"}, "--vni 16777216: out of range 1..16777215"},
		{[]string{"--port", "0"}, "--port 0: out of range"},
		{[]string{"--mtu", "67"}, "--mtu 67: out of range 68.."},
		{[]string{"--mtu", "1451"}, "MTU 1451 is above what underlay u0 (MTU 1500, chosen by --local) allows for VXLAN: at most 1450"},
		{[]string{"--gateway", "198.51.100.1"}, `--gateway "198.51.100.1"`},
		{[]string{"--gateway", "198.51.100.255/24"}, "broadcast address"},
		{[]string{"--overlay-netns", "over/ns"}, "'/'"},
		{[]string{"--overlay-netns", ".."}, `".." is not allowed`},
		{[]string{"--overlay-netns", "over..ns"}, `contains ".."`},
		{[]string{"--overlay-netns", strings.Repeat("o", 256)}, "longer than the kernel's 255"},
		{[]string{"--vxlan", "vxlan-with-a-long-name"}, "longer than the kernel's 15"},
		{[]string{"--bridge", "vxlan1"}, `bridge and vxlan are both named "vxlan1"`},
		{[]string{"--local", "192.0.2.9"}, "local 192.0.2.9 is not an address of this node"},
		{[]string{"--local", "192.0.2.2", "--dev", "u0"}, "exclusive"},
		{[]string{"--dev", "nosuchdev"}, `underlay device "nosuchdev"`},
	}
	// Before any create.
	snap := n.snapshot()
	for _, c := range createCases {
		args := append([]string{"create"}, c.args...)
		if !containsFlag(c.args, "--local") && !containsFlag(c.args, "--dev") {
			args = append(args, "--local", "192.0.2.2")
		}
		n.expectFailure(t, snap, args, c.want)
	}
	n.expectFailure(t, snap, []string{"attach", "pink", "--ip", "198.51.100.2/24"}, "no overlay on this node: run create first")
	n.expectFailure(t, snap, []string{"detach", "pink"}, "no such endpoint")
	n.expectFailure(t, snap, []string{"status"}, "run create first")

	n.ok("create", "--local", "192.0.2.2")
	n.ok("attach", "pink", "--ip", "198.51.100.2/24")
	// Another node's container holds .7 in the shared store.
	store := strings.TrimPrefix(n.store, "dir:")
	if err := os.WriteFile(filepath.Join(store, "arp", "198.51.100.7"), []byte("02:42:00:00:00:99\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := snap
	snap = n.snapshot()
	// The snapshot sees what create and attach made (else the checks above
	// could not fail).
	for _, want := range []string{"netns: overns,pink", "overns links:", "ve-pink", "pink links:", "eth0", "/arp/198.51.100.2=02:42:c6:33:64:02", "overlay.json"} {
		if !strings.Contains(snap, want) || strings.Contains(empty, want) {
			t.Errorf("snapshot does not see %q:\n%s", want, snap)
		}
	}
	attachCases := []struct {
		args []string
		want string
	}{
		{[]string{"sky", "--ip", "198.51.100.300/24"}, `--ip "198.51.100.300/24"`},
		{[]string{"sky", "--ip", "not-an-ip"}, `--ip "not-an-ip"`},
		{[]string{"sky", "--ip", "198.51.100.3/33"}, `--ip "198.51.100.3/33"`},
		{[]string{"sky", "--ip", "203.0.113.3/24"}, "IP 203.0.113.3 is outside the overlay subnet 198.51.100.0/24"},
		{[]string{"sky", "--ip", "198.51.100.3/16"}, "has prefix /16, the overlay subnet is 198.51.100.0/24"},
		{[]string{"sky", "--ip", "198.51.100.1/24"}, "is the gateway's address"},
		{[]string{"sky", "--ip", "198.51.100.0/24"}, "network address"},
		{[]string{"sky", "--ip", "198.51.100.255/24"}, "broadcast address"},
		{[]string{"sky", "--ip", "198.51.100.3/24", "--mac", "01:00:5e:00:00:01"}, "multicast"},
		{[]string{"sky", "--ip", "198.51.100.3/24", "--mac", "ff:ff:ff:ff:ff:ff"}, "multicast"},
		{[]string{"sky", "--ip", "198.51.100.3/24", "--mac", "00:00:00:00:00:00"}, "all-zero"},
		{[]string{"sky", "--ip", "198.51.100.3/24", "--mac", "02:42:c6:33:64"}, `--mac "02:42:c6:33:64": not a MAC address`},
		{[]string{"sky", "--ip", "198.51.100.3/24", "--mac", "nonsense"}, "not a MAC address"},
		{[]string{"sky", "--ip", "198.51.100.3/24", "--ifname", "eth0-is-too-long"}, "longer than the kernel's 15"},
		{[]string{"sky/x", "--ip", "198.51.100.3/24"}, "'/'"},
		{[]string{"..", "--ip", "198.51.100.3/24"}, `".." is not allowed`},
		{[]string{"sky..x", "--ip", "198.51.100.3/24"}, `contains ".."`},
		{[]string{strings.Repeat("s", 256), "--ip", "198.51.100.3/24"}, "longer than the kernel's 255"},
		{[]string{"pink", "--ip", "198.51.100.3/24"}, `"pink" is attached`},
		{[]string{"sky", "--ip", "198.51.100.2/24"}, `IP 198.51.100.2 is used by endpoint "pink"`},
		{[]string{"sky", "--ip", "198.51.100.3/24", "--mac", "02:42:c6:33:64:02"}, `MAC 02:42:c6:33:64:02 is used by endpoint "pink"`},
		{[]string{"sky", "--ip", "198.51.100.7/24"}, "IP 198.51.100.7 is registered to MAC 02:42:00:00:00:99, not 02:42:c6:33:64:07"},
	}
	for _, c := range attachCases {
		n.expectFailure(t, snap, append([]string{"attach"}, c.args...), c.want)
	}
	n.expectFailure(t, snap, []string{"detach", "sky"}, "no such endpoint")
}

// expectFailure runs overlayd args, wants a non-zero exit and want in its
// message, and the node unchanged from snap.
func (n *simNode) expectFailure(t *testing.T, snap string, args []string, want string) {
	t.Helper()
	r := n.run(args...)
	short := strings.Join(args, " ")
	if len(short) > 80 {
		short = short[:80] + "..."
	}
	if r.code == 0 {
		t.Errorf("overlayd %s: exit 0, want failure; stdout: %s", short, r.stdout)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("overlayd %s: message does not contain %q:\n%s", short, want, r.stderr)
	}
	if got := n.snapshot(); got != snap {
		t.Errorf("overlayd %s changed the node:\nbefore:\n%s\nafter:\n%s", short, snap, got)
	}
}

func containsFlag(args []string, f string) bool {
	for _, a := range args {
		if a == f {
			return true
		}
	}
	return false
}

// TestAttachDetachCLI attaches with a given MAC and interface name and with
// a bare IP, checks status, then detaches: the endpoint, its namespace and
// its records are gone, and an existing namespace is kept.
func TestAttachDetachCLI(t *testing.T) {
	n := newUnderlayNode(t, "ad")
	n.ok("create", "--local", "192.0.2.2", "--gateway", "10.10.0.1/16", "--mtu", "1400")
	out := n.ok("attach", "--mac", "02:00:00:00:00:aa", "red", "--ifname", "ceth0", "--ip", "10.10.3.4/16")
	if !strings.Contains(out, "attached red: ceth0 10.10.3.4/16 MAC 02:00:00:00:00:aa") {
		t.Errorf("attach output: %s", out)
	}
	n.ok("attach", "blue", "--ip", "10.10.3.5") // bare address: the overlay's /16
	// A namespace that existed before attach survives detach, minus ceth0.
	green, err := rtnl.CreateNetNS(n.dir, "green")
	if err != nil {
		t.Fatal(err)
	}
	green.Close()
	n.ok("attach", "green", "--ip", "10.10.3.6/16")
	n.ok("detach", "green")
	if links := n.mustIn("green", "ip", "-o", "link", "show"); strings.Contains(links, "eth0") {
		t.Errorf("green still has its interface after detach:\n%s", links)
	}
	if err := rtnl.DeleteNetNS(n.dir, "green"); err != nil {
		t.Errorf("green was not kept by detach: %v", err)
	}

	var st overlay.Status
	if err := json.Unmarshal([]byte(n.ok("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Endpoints) != 2 || len(st.Problems) != 0 {
		t.Fatalf("status: %+v", st)
	}
	blue, red := st.Endpoints[0], st.Endpoints[1]
	if red.Name != "red" || red.IfName != "ceth0" || red.MAC.String() != "02:00:00:00:00:aa" || red.IP.String() != "10.10.3.4/16" ||
		red.HostIf != "ve-red" || !red.HostUp || !red.PeerUp || red.HostMaster != "br0" || red.KernelPeerIndex != red.PeerIndex {
		t.Errorf("red: %+v", red)
	}
	if blue.IP.String() != "10.10.3.5/16" || blue.MAC.String() != "02:42:0a:0a:03:05" {
		t.Errorf("blue: %+v", blue)
	}
	addr := n.mustIn("red", "ip", "-j", "addr", "show", "ceth0")
	if !strings.Contains(addr, `"mtu":1400`) || !strings.Contains(addr, `"local":"10.10.3.4","prefixlen":16`) {
		t.Errorf("red's ceth0: %s", addr)
	}
	if route := n.mustIn("red", "ip", "-j", "route", "show", "default"); !strings.Contains(route, `"gateway":"10.10.0.1"`) {
		t.Errorf("red's default route: %s", route)
	}

	n.ok("detach", "red")
	if _, err := os.Stat(filepath.Join(n.dir, "red")); !os.IsNotExist(err) {
		t.Errorf("red's netns still exists: %v", err)
	}
	store := strings.TrimPrefix(n.store, "dir:")
	for _, f := range []string{"arp/10.10.3.4", "fdb/02:00:00:00:00:aa"} {
		if _, err := os.Stat(filepath.Join(store, f)); !os.IsNotExist(err) {
			t.Errorf("record %s still exists: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(store, "arp/10.10.3.5")); err != nil {
		t.Errorf("blue's record: %v", err)
	}
	if links := n.mustIn("overns", "ip", "-o", "link", "show"); strings.Contains(links, "ve-red") {
		t.Errorf("ve-red still in overns:\n%s", links)
	}
	human := n.ok("status")
	if strings.Contains(human, "red") || !strings.Contains(human, "blue") {
		t.Errorf("status after detach:\n%s", human)
	}
}

// TestAttachRollbackCLI makes attach fail half-way through on a real
// kernel, through the binary: early (the host veth name is taken, after the
// container namespace was created) and late (the existing container
// namespace already has a default route, so the last kernel step fails
// after the veth pair, address, link and bridge port were set up). Each
// time the node is left exactly as before: no namespace, link, record or
// state of the failed attach.
func TestAttachRollbackCLI(t *testing.T) {
	n := newUnderlayNode(t, "rb")
	n.ok("create", "--local", "192.0.2.2")

	// Early: ve-sky exists in the overlay namespace.
	n.mustIn("overns", "ip", "link", "add", "ve-sky", "type", "bridge")
	snap := n.snapshot()
	n.expectFailure(t, snap, []string{"attach", "sky", "--ip", "198.51.100.3/24"}, "create veth ve-sky")
	n.mustIn("overns", "ip", "link", "del", "ve-sky")

	// Late: the existing namespace sky has a default route already.
	sky, err := rtnl.CreateNetNS(n.dir, "sky")
	if err != nil {
		t.Fatal(err)
	}
	sky.Close()
	for _, args := range [][]string{
		{"ip", "link", "add", "x0", "type", "veth", "peer", "name", "x1"},
		{"ip", "addr", "add", "10.99.0.2/24", "dev", "x0"},
		{"ip", "link", "set", "x0", "up"},
		{"ip", "link", "set", "x1", "up"},
		{"ip", "route", "add", "default", "via", "10.99.0.1"},
	} {
		n.mustIn("sky", args...)
	}
	snap = n.snapshot()
	n.expectFailure(t, snap, []string{"attach", "sky", "--ip", "198.51.100.3/24"}, "default route via 198.51.100.1 in sky")
	if addrs := n.mustIn("sky", "ip", "-o", "addr", "show"); strings.Contains(addrs, "198.51.100.3") {
		t.Errorf("sky keeps the failed attach's address:\n%s", addrs)
	}
	// After removing the obstacle, the same attach succeeds.
	n.mustIn("sky", "ip", "route", "del", "default")
	n.ok("attach", "sky", "--ip", "198.51.100.3/24")
}

// TestCreateVTEPChoiceCLI checks how create picks the VTEP without --local,
// and that create and status explain the choice.
func TestCreateVTEPChoiceCLI(t *testing.T) {
	n := newUnderlayNode(t, "vc")
	snap := n.snapshot()
	n.expectFailure(t, snap, []string{"create"}, "no default IPv4 or IPv6 route on this node to choose the VTEP from")

	n.ip("route", "add", "default", "via", "192.0.2.1", "dev", "u0")
	out := n.ok("create")
	if !strings.Contains(out, "VTEP 192.0.2.2 (source of the default route via u0), underlay u0 MTU 1500") {
		t.Errorf("create output:\n%s", out)
	}
	if st := n.ok("status"); !strings.Contains(st, "192.0.2.2, chosen by source of the default route via u0") {
		t.Errorf("status does not explain the VTEP:\n%s", st)
	}
	n.ok("reset")
	if out := n.ok("create", "--dev", "u0"); !strings.Contains(out, "VTEP 192.0.2.2 (address of --dev u0)") {
		t.Errorf("create --dev output:\n%s", out)
	}
}
