package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// requirePodman skips the test without podman, runc and busybox-static, or
// fails it when CI=true (scripts/setup.sh installs them).
func requirePodman(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		missing = append(missing, "busybox-static")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("podman test cannot run in CI: missing %v (scripts/setup.sh installs them)", missing)
	}
	t.Skipf("skipping: needs %v", missing)
}

// podman is a podman of the test's own on one node: its own
// containers.conf (CNI backend, runc, file locks, the test's plugin and
// config directories, ulimits this machine allows), storage root, run root
// and cgroup parent, run in the node's network namespace (nsenter --net),
// so that the plugin runs there. Its cleanup removes every container, its
// storage and its cgroups.
type podman struct {
	t       *testing.T
	n       *node
	dir     string
	conf    string
	netName string
	cgroup  string
}

// newPodman sets up podman on n for network netName (a conflist of
// cniVersion 1.0.0, podman 4.3 refusing 1.1.0: overlaynet, then tuning)
// with the containers' root filesystem rootfs.
func newPodman(t *testing.T, n *node, netName string) *podman {
	t.Helper()
	dir := t.TempDir()
	p := &podman{t: t, n: n, dir: dir, netName: netName, cgroup: "/" + n.name + "-pod"}
	netDir := filepath.Join(dir, "net.d")
	os.MkdirAll(netDir, 0o755)
	conflist, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": netName, "plugins": []any{
		map[string]any{"type": "overlaynet", "stateDir": n.state, "store": n.store, "netnsDir": n.dir},
		map[string]any{"type": "tuning"},
	}})
	if err := os.WriteFile(filepath.Join(netDir, netName+".conflist"), conflist, 0o644); err != nil {
		t.Fatal(err)
	}
	p.conf = filepath.Join(dir, "containers.conf")
	conf := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_backend = "cni"
cni_plugin_dirs = [%q, "/usr/lib/cni"]
network_config_dir = %q
[engine]
runtime = "runc"
lock_type = "file"
tmp_dir = %q
`, binaries(t), netDir, filepath.Join(dir, "tmp"))
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.run("rm", "-af", "-t", "0")
		if m := mountsUnder(dir); len(m) > 0 {
			t.Errorf("podman left mounts: %v", m)
		}
		removeCgroups(t, p.cgroup)
	})
	return p
}

// run runs podman ARGS on the node.
func (p *podman) run(args ...string) (string, error) {
	argv := append([]string{"--net=/var/run/netns/" + p.n.name, "podman", "--root", filepath.Join(p.dir, "root"),
		"--runroot", filepath.Join(p.dir, "runroot"), "--storage-driver", "vfs"}, args...)
	cmd := exec.Command("nsenter", argv...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p *podman) ok(args ...string) string {
	p.t.Helper()
	out, err := p.run(args...)
	if err != nil {
		p.t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// container runs a container of busybox on the network: detached with
// "sleep", or in the foreground with another command (then removed).
func (p *podman) container(rootfs string, detach bool, name string, cmd ...string) (string, error) {
	args := []string{"run", "--name", name, "--network", p.netName, "--cap-add", "NET_RAW",
		"--cgroup-parent", p.cgroup}
	if detach {
		args = append(args, "-d")
	} else {
		args = append(args, "--rm")
	}
	args = append(args, "--rootfs", rootfs)
	return p.run(append(args, cmd...)...)
}

// busyboxRootfs makes a root filesystem of busybox-static and its applets.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "ping", "sleep", "ip", "cat"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	return root
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var found []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			found = append(found, f[4])
		}
	}
	return found
}

// removeCgroups removes the cgroup parent (and what podman made under it)
// in every hierarchy, deepest first.
func removeCgroups(t *testing.T, parent string) {
	var dirs []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel := strings.TrimPrefix(p, "/sys/fs/cgroup")
		if i := strings.Index(rel, parent); i >= 0 && (i == 0 || strings.Count(rel[:i], "/") <= 1) {
			dirs = append(dirs, p)
			return nil
		}
		if strings.Count(rel, "/") >= 2 {
			return filepath.SkipDir // the parent sits at the top of a hierarchy
		}
		return nil
	})
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := os.Remove(d); err != nil {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

// TestPodman: podman 4.3 with its CNI backend starts containers on two
// simulated nodes through the plugin (podman calls VERSION, ADD and, on
// rm, DEL); they reach each other and a container attached by `overlayd
// attach` through the nodes' daemons, and `podman rm` releases everything:
// no netns, veth, record, address, block or CNI cache of theirs is left.
func TestPodman(t *testing.T) {
	requirePodman(t)
	requirePlugins(t)
	store := "dir:" + t.TempDir()
	n1, n2 := newPair(t, "pd", store)
	netName := n1.name + "-net"
	rootfs := busyboxRootfs(t)
	before1, before2 := n1.snapshot(), n2.snapshot()
	n1.startDaemon()
	n2.startDaemon()
	byhand := n1.mustOverlayd("attach", "byhand")
	if !strings.Contains(byhand, "198.51.100.2/24") {
		t.Fatalf("overlayd attach: %s", byhand)
	}
	p1, p2 := newPodman(t, n1, netName), newPodman(t, n2, netName)
	if out := p1.ok("network", "inspect", netName); !strings.Contains(out, "overlaynet") {
		t.Fatalf("podman does not see the network (VERSION failed?):\n%s", out)
	}
	if out, err := p1.container(rootfs, true, "alpha", "/bin/sleep", "600"); err != nil {
		t.Fatalf("podman run alpha: %v\n%s", err, out)
	}
	ip := p1.ok("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "alpha")
	sandbox := p1.ok("inspect", "--format", "{{.NetworkSettings.SandboxKey}}", "alpha")
	if ip != "198.51.100.3" {
		t.Fatalf("alpha's address %q, want 198.51.100.3 (node 1's block, after byhand's .2)", ip)
	}
	// A container on node 2 pings alpha on node 1, then byhand.
	for _, dst := range []string{ip, "198.51.100.2"} {
		if out, err := p2.container(rootfs, false, "beta", "/bin/ping", "-c", "3", "-w", "10", dst); err != nil {
			t.Errorf("beta (node 2) ping %s: %v\n%s", dst, err, out)
		}
	}
	// byhand (overlayd attach) pings alpha.
	in(t, filepath.Join(n1.dir, "byhand"), "ping", "-c", "1", "-W", "5", ip)
	// alpha pings byhand.
	if out := p1.ok("exec", "alpha", "/bin/ping", "-c", "1", "-W", "5", "198.51.100.2"); !strings.Contains(out, "1 packets received") {
		t.Errorf("alpha ping byhand: %s", out)
	}
	p1.ok("rm", "-f", "-t", "0", "alpha")
	if _, err := os.Stat(sandbox); err == nil {
		t.Errorf("alpha's netns %s still exists after podman rm", sandbox)
	}
	if c := cniCache(netName); len(c) != 0 {
		t.Errorf("CNI cache after podman rm: %v", c)
	}
	st := n1.mustOverlayd("status")
	if strings.Contains(st, "cni-") {
		t.Errorf("node 1 still has the container after podman rm:\n%s", st)
	}
	n1.mustOverlayd("detach", "byhand")
	if out := p1.ok("ps", "-aq"); out != "" {
		t.Errorf("podman containers left on node 1: %s", out)
	}
	if out := p2.ok("ps", "-aq"); out != "" {
		t.Errorf("podman containers left on node 2: %s", out)
	}
	for i, c := range []struct {
		n      *node
		before string
	}{{n1, before1}, {n2, before2}} {
		if after := c.n.snapshot(); after != c.before {
			t.Errorf("node %d: left behind:\nbefore: %s\nafter:  %s", i+1, c.before, after)
		}
	}
}
