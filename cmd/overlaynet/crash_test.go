package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killed runs cmd and kills it (SIGKILL) after d; it reports whether the
// process was killed (false: it exited by itself first, with err).
func killed(t *testing.T, cmd *exec.Cmd, d time.Duration) (bool, error) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return false, err
	case <-time.After(d):
	}
	cmd.Process.Signal(syscall.SIGKILL) // the pid is the plugin or overlayd: nsenter execs it
	err := <-done
	if ee, ok := err.(*exec.ExitError); ok {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return true, nil
		}
	}
	return false, err
}

// overlaydCmd is `overlayd ARGS` in the node's netns, not yet started.
func (n *node) overlaydCmd(args ...string) *exec.Cmd {
	argv := []string{"--net=/var/run/netns/" + n.name, filepath.Join(binaries(n.t), "overlayd"), args[0],
		"--netns-dir", n.dir, "--state-dir", n.state, "--store", n.store}
	return exec.Command("nsenter", append(argv, args[1:]...)...)
}

// pluginCmd is the plugin in the node's netns with c's environment, not yet
// started.
func (n *node) pluginCmd(c call) *exec.Cmd {
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+n.name, filepath.Join(binaries(n.t), "overlaynet"))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND=" + c.cmd, "CNI_CONTAINERID=" + c.containerID,
		"CNI_NETNS=" + c.netns, "CNI_IFNAME=" + c.ifname, "CNI_PATH=/usr/lib/cni"}
	cmd.Stdin = strings.NewReader(string(c.stdin))
	return cmd
}

// TestKilledAttachesLeaveNothing: 100 `overlayd attach` and 100 CNI ADDs,
// each killed with SIGKILL at a random point 1-80 ms in (or up to the
// time a whole one takes here, if longer: every step is hit), one after
// the other (a node's attaches run one at a time: a kill lands in the
// operation itself, not in its wait for the node), leave what one pass of
// `overlayd run` removes entirely: no veth, netns, address allocation,
// address block, registry record, anti-spoofing rule, record of intent or
// temporary file that no endpoint owns, no interface left in a runtime's
// namespace, and the runtime's namespaces themselves untouched. Then every
// killed name attaches again, and detaching everything leaves nothing.
func TestKilledAttachesLeaveNothing(t *testing.T) {
	const kills = 100
	n := newNode(t, "kill", "192.0.2.2", "", false)
	n.mustOverlayd("create", "--local", n.vtep, "--gateway", "10.44.0.1/22")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 23))
	runtimeNS := map[string]bool{filepath.Join(n.dir, "cprobe"): true}
	conf := n.conf("1.0.0", nil)
	// How long a whole attach and ADD take here: the kills span that.
	begin := time.Now()
	n.mustOverlayd("attach", "probe")
	n.ok(call{cmd: "ADD", containerID: "probe", netns: n.containerNS("cprobe"), ifname: "eth0", stdin: conf})
	span := max(80*time.Millisecond, time.Since(begin)*5/8)
	killAt := func() time.Duration { return time.Millisecond + time.Duration(rng.Int64N(int64(span))) }
	start := time.Now()
	var killedAttach, killedAdd []int
	for i := range kills {
		name := fmt.Sprintf("k%d", i)
		d := killAt()
		k, err := killed(t, n.overlaydCmd("attach", name), d)
		if err != nil {
			t.Fatalf("attach %s (not killed, %v in): %v", name, d, err)
		}
		if k {
			killedAttach = append(killedAttach, i)
		}
		ns := n.containerNS(fmt.Sprintf("c%d", i))
		runtimeNS[ns] = true
		add := call{cmd: "ADD", containerID: fmt.Sprintf("ctr-%d", i), netns: ns, ifname: "eth0", stdin: conf}
		d = killAt()
		if k, err = killed(t, n.pluginCmd(add), d); err != nil {
			t.Fatalf("ADD %d (not killed, %v in): %v", i, d, err)
		}
		if k {
			killedAdd = append(killedAdd, i)
		}
	}
	left := n.leaks(runtimeNS)
	kinds := map[string]int{}
	for _, l := range left {
		k, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(l, "record of "), "runtime "), " ")
		kinds[k]++
	}
	t.Logf("%d attaches and %d ADDs killed (of %d each, at random in 1 ms..%v) in %v; they left %d leftovers %v",
		len(killedAttach), len(killedAdd), kills, span.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), len(left), kinds)
	if len(killedAttach) < kills/4 || len(killedAdd) < kills/4 || len(killedAttach) == kills || len(killedAdd) == kills {
		t.Fatalf("%d attaches and %d ADDs were killed before they ended: the kill points miss the operations or their ends", len(killedAttach), len(killedAdd))
	}

	// status shows the operations killed half-way, in text and JSON.
	var st struct {
		HalfMade []struct {
			Name       string `json:"name"`
			InProgress bool   `json:"in_progress"`
		} `json:"half_made"`
	}
	if err := json.Unmarshal([]byte(n.mustOverlayd("status", "--json")), &st); err != nil || len(st.HalfMade) == 0 || st.HalfMade[0].InProgress {
		t.Errorf("status --json: half-made %+v, %v", st.HalfMade, err)
	}
	if out := n.mustOverlayd("status"); !strings.Contains(out, "HALF-MADE") || !strings.Contains(out, "killed half-way") {
		t.Errorf("status does not show the half-made operations:\n%s", out)
	}

	// One pass of the daemon: its start-up sweep.
	d := n.startDaemon()
	if !waitLog(d, "start-up sweep done", 30*time.Second) {
		t.Fatalf("overlayd run logged no start-up sweep:\n%s", d)
	}
	d.stop(t)
	if left := n.leaks(runtimeNS); len(left) > 0 {
		t.Errorf("after overlayd run, %d leftovers:\n%s\ndaemon log:\n%s", len(left), strings.Join(left, "\n"), d)
	}
	if !strings.Contains(d.String(), "removed a leftover") {
		t.Errorf("the daemon logged no leftover removed:\n%s", d)
	}

	// Every killed name attaches again (unless it was killed after its
	// attach ended, before it exited: then it is attached).
	attached := n.endpointsByNetNS()
	for _, i := range killedAttach {
		if name := fmt.Sprintf("k%d", i); !attached[filepath.Join(n.dir, name)] {
			n.mustOverlayd("attach", name)
		}
	}
	for _, i := range killedAdd {
		if ns := filepath.Join(n.dir, fmt.Sprintf("c%d", i)); !attached[ns] {
			n.ok(call{cmd: "ADD", containerID: fmt.Sprintf("ctr-%d", i), netns: ns, ifname: "eth0", stdin: conf})
		}
	}
	n.mustOverlayd("detach", "probe")
	n.ok(call{cmd: "DEL", containerID: "probe", netns: filepath.Join(n.dir, "cprobe"), ifname: "eth0", stdin: conf})
	for i := range kills {
		n.mustOverlayd("detach", fmt.Sprintf("k%d", i))
		n.ok(call{cmd: "DEL", containerID: fmt.Sprintf("ctr-%d", i), netns: filepath.Join(n.dir, fmt.Sprintf("c%d", i)), ifname: "eth0", stdin: conf})
	}
	if left := n.leaks(runtimeNS); len(left) > 0 {
		t.Errorf("after detaching everything, %d leftovers:\n%s", len(left), strings.Join(left, "\n"))
	}
	if eps, _ := os.ReadDir(filepath.Join(n.state, "endpoints")); len(eps) > 0 {
		t.Errorf("after detaching everything, endpoints %v", eps)
	}
}

// TestKilledAddThenDel: a CNI ADD killed at a random point, followed by the
// runtime's DEL, as a runtime does: DEL succeeds and leaves nothing of the
// container (no eth0 in it, no veth, address or record), the next ADD
// succeeds (never 104); and an attach killed at a random point is followed
// by an attach of the same name that succeeds. No daemon runs.
func TestKilledAddThenDel(t *testing.T) {
	const rounds = 20
	n := newNode(t, "kdel", "192.0.2.2", "", true)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 29))
	conf := n.conf("1.0.0", nil)
	runtimeNS := map[string]bool{}
	for i := range rounds {
		ns := n.containerNS(fmt.Sprintf("c%d", i))
		runtimeNS[ns] = true
		add := call{cmd: "ADD", containerID: fmt.Sprintf("ctr-%d", i), netns: ns, ifname: "eth0", stdin: conf}
		del := add
		del.cmd = "DEL"
		if _, err := killed(t, n.pluginCmd(add), time.Duration(1+rng.IntN(80))*time.Millisecond); err != nil {
			t.Fatalf("ADD %d: %v", i, err)
		}
		n.ok(del)
		if left := n.leaks(runtimeNS); len(left) > 0 {
			t.Fatalf("round %d: after a killed ADD and a DEL that succeeded, %d leftovers:\n%s", i, len(left), strings.Join(left, "\n"))
		}
		n.ok(add)
		n.ok(del)

		name := fmt.Sprintf("k%d", i)
		if _, err := killed(t, n.overlaydCmd("attach", name), time.Duration(1+rng.IntN(80))*time.Millisecond); err != nil {
			t.Fatalf("attach %s: %v", name, err)
		}
		if out, err := n.overlaydCmd("attach", name).CombinedOutput(); err != nil && !strings.Contains(string(out), "already exists") {
			t.Fatalf("round %d: attach %s again after a killed one: %v\n%s", i, name, err, out)
		}
		n.mustOverlayd("detach", name)
	}
	if left := n.leaks(runtimeNS); len(left) > 0 {
		t.Errorf("%d leftovers:\n%s", len(left), strings.Join(left, "\n"))
	}
}

// stateEndpoint is what the test reads of an endpoint's state file.
type stateEndpoint struct {
	Endpoint struct {
		Name   string `json:"name"`
		NetNS  string `json:"netns_path"`
		IP     string `json:"ip"`
		MAC    string `json:"mac"`
		HostIf string `json:"host_if"`
	} `json:"endpoint"`
	CreatedNetNS bool `json:"created_netns"`
}

// waitLog waits until the daemon logged msg, for at most timeout.
func waitLog(d *ovdaemon, msg string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(d.String(), msg) {
			return true
		}
	}
	return false
}

// endpointsByNetNS returns the container namespaces of the endpoints in
// the state directory (by path).
func (n *node) endpointsByNetNS() map[string]bool {
	out := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(n.state, "endpoints", "*.json"))
	for _, f := range files {
		var st stateEndpoint
		if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &st) == nil {
			out[cmp.Or(st.Endpoint.NetNS, filepath.Join(n.dir, st.Endpoint.Name))] = true
		}
	}
	return out
}

// leaks lists what the node holds that no endpoint recorded in its state
// directory owns; runtimeNS are the namespaces a runtime made (they must
// stay, with no interface but lo unless an endpoint is in them).
func (n *node) leaks(runtimeNS map[string]bool) []string {
	n.t.Helper()
	var out []string
	leak := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	eps := map[string]stateEndpoint{}
	ips, macs, hostIfs, inNS := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(n.state, "endpoints", "*.json"))
	for _, f := range files {
		var st stateEndpoint
		b, err := os.ReadFile(f)
		if err != nil || json.Unmarshal(b, &st) != nil {
			leak("unreadable endpoint state %s: %v %s", f, err, b)
			continue
		}
		e := st.Endpoint
		eps[e.Name] = st
		ips[strings.Split(e.IP, "/")[0]], macs[e.MAC], hostIfs[e.HostIf], inNS[e.NetNS] = true, true, true, true
	}
	if ents, _ := os.ReadDir(filepath.Join(n.state, "intents")); len(ents) > 0 {
		for _, e := range ents {
			leak("record of intent %s", e.Name())
		}
	}
	// Namespaces: the overlay's, the runtime's, and those attach made.
	names, _ := filepath.Glob(filepath.Join(n.dir, "*"))
	for _, p := range names {
		name := filepath.Base(p)
		if name != "overns" && !runtimeNS[p] && !eps[name].CreatedNetNS {
			leak("netns %s", p)
		}
	}
	for p := range runtimeNS {
		if _, err := os.Stat(p); err != nil {
			leak("runtime netns %s deleted: %v", p, err)
			continue
		}
		if links := linkNames(n.t, p); !inNS[p] && !slices.Equal(links, []string{"lo"}) {
			leak("runtime netns %s holds %v", p, links)
		}
	}
	for _, l := range linkNames(n.t, filepath.Join(n.dir, "overns")) {
		if strings.HasPrefix(l, "ve-") && !hostIfs[l] {
			leak("veth %s", l)
		}
	}
	if out, err := exec.Command("nsenter", "--net="+filepath.Join(n.dir, "overns"), "nft", "list", "ruleset").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			for _, f := range strings.Fields(strings.NewReplacer(`"`, " ", ",", " ").Replace(l)) {
				if strings.HasPrefix(f, "ve-") && !hostIfs[f] {
					leak("anti-spoofing rule of %s: %s", f, strings.TrimSpace(l))
				}
			}
		}
	}
	allocated := map[string]bool{}
	allocs, _ := filepath.Glob(filepath.Join(n.state, "ipam", "*"))
	for _, a := range allocs {
		if fi, err := os.Stat(a); err != nil || fi.IsDir() || strings.HasPrefix(filepath.Base(a), ".") {
			continue
		}
		id, _ := os.ReadFile(a)
		allocated[filepath.Base(a)] = true
		if _, ok := eps[strings.TrimSpace(string(id))]; !ok {
			leak("allocation %s=%q", filepath.Base(a), strings.TrimSpace(string(id)))
		}
	}
	store := strings.TrimPrefix(n.store, "dir:")
	blocks, _ := filepath.Glob(filepath.Join(store, "blocks", "*"))
	for _, b := range blocks {
		owner, _ := os.ReadFile(b)
		if strings.TrimSpace(string(owner)) != n.vtep || strings.HasPrefix(filepath.Base(b), ".") {
			continue
		}
		used := false
		for ip := range allocated {
			used = used || blockHolds(filepath.Base(b), ip)
		}
		if !used {
			leak("address block %s with no allocation", filepath.Base(b))
		}
	}
	for _, sub := range []string{"arp", "fdb"} {
		recs, _ := os.ReadDir(filepath.Join(store, sub))
		for _, r := range recs {
			if (sub == "arp" && !ips[r.Name()]) || (sub == "fdb" && !macs[r.Name()]) {
				v, _ := os.ReadFile(filepath.Join(store, sub, r.Name()))
				leak("record %s/%s=%s", sub, r.Name(), strings.TrimSpace(string(v)))
			}
		}
	}
	for _, root := range []string{n.state, store} {
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".tmp") {
				leak("temporary file %s", p)
			}
			return nil
		})
	}
	return out
}

// linkNames lists the interfaces of the namespace at path, sorted.
func linkNames(t testing.TB, path string) []string {
	out, err := exec.Command("nsenter", "--net="+path, "ip", "-j", "link", "show").Output()
	if err != nil {
		t.Fatalf("ip link in %s: %v", path, err)
	}
	var ls []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal(out, &ls); err != nil {
		t.Fatalf("ip -j link show: %v: %s", err, out)
	}
	var names []string
	for _, l := range ls {
		names = append(names, l.Name)
	}
	slices.Sort(names)
	return names
}

// blockHolds reports whether the block named ADDR-BITS holds ip.
func blockHolds(block, ip string) bool {
	p, err := netip.ParsePrefix(strings.Replace(block, "-", "/", 1))
	a, aerr := netip.ParseAddr(ip)
	return err == nil && aerr == nil && p.Contains(a)
}
