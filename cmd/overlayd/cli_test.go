package main

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/testbin"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// bins is the overlayd binary, built once per test run exactly as `make
// build` does (static, stripped), removed by TestMain.
var bins = &testbin.Set{Pkgs: map[string]string{"overlayd": "."}}

// nokubeBins is overlayd built BUILDTAGS=nokube, for the scale
// benchmarks' comparison of what the Kubernetes client costs.
var nokubeBins = &testbin.Set{Pkgs: map[string]string{"overlayd": "."}, Tags: map[string]string{"overlayd": "nokube"}}

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	nokubeBins.Remove()
	kubeBins.Remove()
	os.Exit(code)
}

// overlaydBinary returns the path of the overlayd binary, building it on
// first use.
func overlaydBinary(t testing.TB) string {
	t.Helper()
	return filepath.Join(bins.Dir(t), "overlayd")
}

// result is how an overlayd run ended.
type result struct {
	stdout, stderr string
	code           int
}

// simNode is a simulated node: a throwaway netns (its "host" namespace) with
// its own directory of named namespaces, its own state directory and a store
// that may be shared with other nodes.
type simNode struct {
	t     testing.TB
	name  string // the node's netns in rtnl.DefaultNetNSDir
	dir   string // the node's --netns-dir
	state string // the node's --state-dir
	store string // --store URL
}

// newSimNode makes a node whose overlayd uses store ("" for a store of its
// own). At the end of the test it runs `overlayd reset`, deletes whatever is
// left in the node's netns dir, unmounts that dir and checks nothing of the
// node is still mounted, also when the test failed.
func newSimNode(t testing.TB, tag, store string) *simNode {
	t.Helper()
	overlaydBinary(t)
	var base string
	t.Cleanup(func() { // registered first, so it runs last
		if m := mountsUnder(t, base); base != "" && len(m) > 0 {
			t.Errorf("still mounted after the test: %q", m)
		}
	})
	_, name := nstest.NetNS(t, tag)
	base = t.TempDir() // removed after the unmount below, before the node netns goes
	n := &simNode{t: t, name: name, dir: filepath.Join(base, "netns"), state: filepath.Join(base, "state"), store: store}
	if n.store == "" {
		n.store = "dir:" + filepath.Join(base, "store")
	}
	t.Cleanup(func() {
		names, _ := rtnl.ListNetNS(n.dir)
		for _, nm := range names {
			if err := rtnl.DeleteNetNS(n.dir, nm); err != nil {
				t.Errorf("delete leftover netns %s/%s: %v", n.dir, nm, err)
			}
		}
		if err := unix.Unmount(n.dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("unmount %s: %v", n.dir, err)
		}
	})
	t.Cleanup(func() {
		if r := n.run("reset"); r.code != 0 {
			t.Errorf("overlayd reset on %s: exit %d: %s", name, r.code, r.stderr)
		}
	})
	return n
}

// run runs `overlayd CMD --netns-dir ... --state-dir ... --store ... ARGS`
// inside the node's netns, switching only the network namespace (nsenter
// --net), so the namespaces overlayd creates stay mounted, with a PATH where
// no tool (iproute2 or other) can be found.
func (n *simNode) run(args ...string) result {
	n.t.Helper()
	argv := append([]string{args[0], "--netns-dir", n.dir, "--state-dir", n.state, "--store", n.store}, args[1:]...)
	return n.runEnv(nil, argv...)
}

// ok runs overlayd and fails the test unless it exits 0; it returns stdout.
func (n *simNode) ok(args ...string) string {
	n.t.Helper()
	r := n.run(args...)
	if r.code != 0 {
		n.t.Fatalf("overlayd %s on %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), n.name, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// ip runs ip (or another command) in the node's netns.
func (n *simNode) ip(args ...string) string {
	n.t.Helper()
	return nstest.Run(n.t, n.name, "ip", args...)
}

// in runs a command in the named namespace name of the node's netns dir.
func (n *simNode) in(netns string, argv ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"--net=" + filepath.Join(n.dir, netns)}, argv...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), errors.New(strings.Join(argv, " ") + " in " + netns + ": " + err.Error() + ": " + stderr.String())
	}
	return string(out), nil
}

// mustIn is in that fails the test on error.
func (n *simNode) mustIn(netns string, argv ...string) string {
	n.t.Helper()
	out, err := n.in(netns, argv...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(t testing.TB, dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			found = append(found, fields[4])
		}
	}
	return found
}

// snapshot is what a failed command must leave unchanged on a node: named
// namespaces, links in the node and overlay namespaces, store records and
// state files.
func (n *simNode) snapshot() string {
	n.t.Helper()
	var b strings.Builder
	names, err := rtnl.ListNetNS(n.dir)
	if err != nil {
		n.t.Fatal(err)
	}
	b.WriteString("netns: " + strings.Join(names, ",") + "\n")
	b.WriteString("node links: " + linkSummary(n.ip("-o", "link", "show")) + "\n")
	for _, nm := range names {
		out, err := n.in(nm, "ip", "-o", "link", "show")
		if err != nil {
			n.t.Fatal(err)
		}
		b.WriteString(nm + " links: " + linkSummary(out) + "\n")
	}
	for _, root := range []string{strings.TrimPrefix(n.store, "dir:"), n.state} {
		var files []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && d.Name() != ".lock" { // lock files are not state
				data, _ := os.ReadFile(p)
				files = append(files, strings.TrimPrefix(p, root)+"="+strings.TrimSpace(string(data)))
			}
			return nil
		})
		sort.Strings(files)
		b.WriteString(root + ": " + strings.Join(files, " | ") + "\n")
	}
	return b.String()
}

// linkSummary reduces `ip -o link show` to "index:name" pairs.
func linkSummary(out string) string {
	var links []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			links = append(links, f[0]+f[1])
		}
	}
	return strings.Join(links, " ")
}

// newUnderlayNode is a node with an underlay device u0 holding 192.0.2.2/24
// (MTU 1500), enough for create --local 192.0.2.2: one end of a veth pair
// whose other end u1 stays in the node (the kernel here has no dummy).
func newUnderlayNode(t testing.TB, tag string) *simNode {
	n := newSimNode(t, tag, "")
	addUnderlay(t, n.name)
	return n
}

// addUnderlay gives the named netns the veth pair u0 (192.0.2.2/24) - u1.
func addUnderlay(t testing.TB, netns string) {
	t.Helper()
	nstest.Run(t, netns, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
	nstest.Run(t, netns, "ip", "addr", "add", "192.0.2.2/24", "dev", "u0")
	nstest.Run(t, netns, "ip", "link", "set", "u0", "up")
	nstest.Run(t, netns, "ip", "link", "set", "u1", "up")
}
