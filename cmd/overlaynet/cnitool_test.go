package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// cnitool returns the cnitool binary (installed by scripts/setup.sh with
// go install github.com/containernetworking/cni/cnitool@v1.3.1); a missing
// one skips the test, or fails it when CI=true.
func cnitool(t *testing.T) string {
	t.Helper()
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	for _, p := range []string{os.Getenv("CNITOOL"), filepath.Join(strings.TrimSpace(string(gopath)), "bin/cnitool"),
		filepath.Join(os.Getenv("HOME"), "go/bin/cnitool"), "/root/go/bin/cnitool"} {
		if p != "" && p != "bin/cnitool" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if p, err := exec.LookPath("cnitool"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("cnitool test cannot run in CI: no cnitool (scripts/setup.sh installs it)")
	}
	t.Skip("skipping: needs cnitool (go install github.com/containernetworking/cni/cnitool@v1.3.1)")
	return ""
}

// requirePlugins returns the directory of the standard plugins (tuning,
// host-local), Debian's containernetworking-plugins.
func requirePlugins(t *testing.T) string {
	t.Helper()
	const dir = "/usr/lib/cni"
	if _, err := os.Stat(filepath.Join(dir, "tuning")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs the standard CNI plugins in %s (containernetworking-plugins; scripts/setup.sh installs it)", dir)
		}
		t.Skipf("skipping: needs the standard CNI plugins in %s", dir)
	}
	return dir
}

// cniCache lists libcni's cached results of network netName (libcni keeps
// them in /var/lib/cni/results, files named NETWORK-CONTAINERID-IFNAME).
func cniCache(netName string) []string {
	ents, _ := os.ReadDir("/var/lib/cni/results")
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), netName+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestCnitool drives the plugin with the CNI project's own client: add,
// check and del of a conflist where overlaynet comes first and the
// standard tuning plugin second (chaining: prevResult passed through), then
// gc and status with a 1.1.0 config, against a netns the test created.
// Nothing stays behind: not the interface, not the records, not the
// address or its block, not libcni's cache.
func TestCnitool(t *testing.T) {
	tool := cnitool(t)
	plugins := requirePlugins(t)
	n := newNode(t, "ct", "192.0.2.2", "", true)
	before := n.snapshot()
	netName := strings.ReplaceAll(n.name, "_", "-")
	confDir := t.TempDir()
	entry := map[string]any{"type": "overlaynet", "stateDir": n.state, "store": n.store, "netnsDir": n.dir}
	write := func(file, ver string, plugins []any) {
		b, _ := json.Marshal(map[string]any{"cniVersion": ver, "name": netName, "plugins": plugins})
		if err := os.WriteFile(filepath.Join(confDir, file), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// tuning sets a sysctl in the container, proof that it ran after us on
	// the interface we made.
	write("10-chain.conflist", "1.0.0", []any{entry, map[string]any{"type": "tuning", "sysctl": map[string]string{"net.ipv4.conf.eth0.arp_notify": "1"}}})
	ns := n.containerNS("ctr")
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + n.name, tool}, args...)...)
		cmd.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+binaries(t)+":"+plugins, "CNI_IFNAME=eth0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cnitool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	out := run("add", netName, ns)
	var res addResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.IPs) != 1 || res.IPs[0].Address != "198.51.100.2/24" {
		t.Fatalf("cnitool add: %v\n%s", err, out)
	}
	if v := strings.TrimSpace(in(t, ns, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify")); v != "1" {
		t.Errorf("tuning did not run after overlaynet: arp_notify %s", v)
	}
	if a := in(t, ns, "ip", "-o", "addr", "show", "dev", "eth0"); !strings.Contains(a, "198.51.100.2/24") {
		t.Errorf("container eth0: %s", a)
	}
	if len(cniCache(netName)) != 1 {
		t.Errorf("libcni cache after add: %v", cniCache(netName))
	}
	run("check", netName, ns)
	run("del", netName, ns)
	if links := in(t, ns, "ip", "-o", "link", "show"); strings.Contains(links, "eth0") {
		t.Errorf("eth0 after cnitool del: %s", links)
	}
	if c := cniCache(netName); len(c) != 0 {
		t.Errorf("libcni cache after del: %v", c)
	}

	// GC and STATUS need a 1.1.0 config.
	os.Remove(filepath.Join(confDir, "10-chain.conflist"))
	write("20-gc.conflist", "1.1.0", []any{entry})
	run("add", netName, ns)
	// STATUS: ready only with the daemon running.
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+n.name, tool, "status", netName, ns)
	cmd.Env = append(os.Environ(), "NETCONFPATH="+confDir, "CNI_PATH="+binaries(t))
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "resolver daemon") {
		t.Errorf("cnitool status without the daemon: %v\n%s", err, out)
	}
	d := n.startDaemon()
	run("status", netName, ns)
	d.stop(t)
	// cnitool gc passes no valid attachment: everything of this network goes.
	run("gc", netName, ns)
	if links := in(t, ns, "ip", "-o", "link", "show"); strings.Contains(links, "eth0") {
		t.Errorf("eth0 after cnitool gc: %s", links)
	}
	deleteNS(t, n, "ctr")
	if after := n.snapshot(); after != before {
		t.Errorf("left behind:\nbefore: %s\nafter:  %s", before, after)
	}
	if c := cniCache(netName); len(c) != 0 {
		t.Errorf("libcni cache after gc: %v", c)
	}
}
