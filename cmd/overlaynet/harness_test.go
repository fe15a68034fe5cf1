package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/testbin"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// bins are the plugin and overlayd, built once per test run as `make build`
// builds them, removed by TestMain.
var bins = &testbin.Set{Pkgs: map[string]string{"overlaynet": ".", "overlayd": "../overlayd"}}

func TestMain(m *testing.M) {
	code := m.Run()
	bins.Remove()
	os.Exit(code)
}

// binaries returns the directory holding overlaynet and overlayd.
func binaries(t testing.TB) string {
	t.Helper()
	return bins.Dir(t)
}

// node is a simulated node: a netns of its own (its "host" namespace) with
// an underlay address, its own netns and state directories, a store, and
// the overlay created by `overlayd create`.
type node struct {
	t     *testing.T
	name  string // the node's netns in /var/run/netns
	base  string
	dir   string // netns dir
	state string // state dir
	store string // store URL
	vtep  string
}

// newNode makes a node with underlay address vtep (192.0.2.x) on store (""
// for one of its own). create says whether to run `overlayd create`. At the
// end of the test `overlayd reset` runs, then every namespace left is
// deleted and its netns dir unmounted.
func newNode(t *testing.T, tag, vtep, store string, create bool) *node {
	t.Helper()
	nstest.RequireRoot(t)
	binaries(t)
	_, name := nstest.NetNS(t, tag)
	base := t.TempDir()
	n := &node{t: t, name: name, base: base, dir: filepath.Join(base, "netns"), state: filepath.Join(base, "state"), store: store, vtep: vtep}
	if n.store == "" {
		n.store = "dir:" + filepath.Join(base, "store")
	}
	t.Cleanup(func() {
		names, _ := rtnl.ListNetNS(n.dir)
		for _, nm := range names {
			if err := rtnl.DeleteNetNS(n.dir, nm); err != nil {
				t.Errorf("delete leftover netns %s: %v", nm, err)
			}
		}
		if err := unix.Unmount(n.dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("unmount %s: %v", n.dir, err)
		}
	})
	t.Cleanup(func() {
		if out, err := n.overlayd("reset"); err != nil {
			t.Errorf("overlayd reset: %v\n%s", err, out)
		}
	})
	if vtep == "" {
		return n // the caller wires the underlay
	}
	nstest.Run(t, name, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
	nstest.Run(t, name, "ip", "addr", "add", vtep+"/24", "dev", "u0")
	nstest.Run(t, name, "ip", "link", "set", "u0", "up")
	nstest.Run(t, name, "ip", "link", "set", "u1", "up")
	if create {
		n.mustOverlayd("create", "--local", vtep)
	}
	return n
}

// newPair is two nodes on one store, 192.0.2.2 and 192.0.2.3, joined by a
// veth pair (u0 on both sides), each with its overlay created (create
// --local VTEP, then createArgs).
func newPair(t *testing.T, tag, store string, createArgs ...string) (*node, *node) {
	t.Helper()
	n1 := newNode(t, tag+"a", "", store, false)
	n2 := newNode(t, tag+"b", "", store, false)
	n1.vtep, n2.vtep = "192.0.2.2", "192.0.2.3"
	nstest.Run(t, n1.name, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", n2.name)
	for _, n := range []*node{n1, n2} {
		nstest.Run(t, n.name, "ip", "addr", "add", n.vtep+"/24", "dev", "u0")
		nstest.Run(t, n.name, "ip", "link", "set", "u0", "up")
		n.mustOverlayd(append([]string{"create", "--local", n.vtep}, createArgs...)...)
	}
	return n1, n2
}

// overlayd runs `overlayd ARGS` in the node's netns with its directories.
func (n *node) overlayd(args ...string) (string, error) {
	argv := []string{"--net=/var/run/netns/" + n.name, filepath.Join(binaries(n.t), "overlayd"), args[0],
		"--netns-dir", n.dir, "--state-dir", n.state, "--store", n.store}
	argv = append(argv, args[1:]...)
	out, err := exec.Command("nsenter", argv...).CombinedOutput()
	return string(out), err
}

func (n *node) mustOverlayd(args ...string) string {
	n.t.Helper()
	out, err := n.overlayd(args...)
	if err != nil {
		n.t.Fatalf("overlayd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// conf returns a plugin config of version ver for this node, with extra
// keys merged in.
func (n *node) conf(ver string, extra map[string]any) []byte {
	c := map[string]any{"cniVersion": ver, "name": "ovl", "type": "overlaynet",
		"stateDir": n.state, "store": n.store, "netnsDir": n.dir, "logLevel": "debug"}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		n.t.Fatal(err)
	}
	return b
}

// call is one plugin invocation, as a runtime makes it.
type call struct {
	cmd, containerID, netns, ifname, args string
	stdin                                 []byte
	env                                   []string // replaces the CNI_* variables when set
}

// reply is how the plugin answered.
type reply struct {
	stdout, stderr string
	code           int
	err            *cniErr // the error object on stdout, if the exit status is not 0
}

type cniErr struct {
	CNIVersion string `json:"cniVersion"`
	Code       uint   `json:"code"`
	Msg        string `json:"msg"`
	Details    string `json:"details"`
}

// plugin runs the plugin in the node's netns (nsenter --net, as a runtime
// running on that node would) with c's environment and stdin.
func (n *node) plugin(c call) reply {
	n.t.Helper()
	cmd := exec.Command(filepath.Join(binaries(n.t), "overlaynet"))
	if n.name != "" {
		cmd = exec.Command("nsenter", "--net=/var/run/netns/"+n.name, filepath.Join(binaries(n.t), "overlaynet"))
	}
	env := c.env
	if env == nil {
		env = []string{"CNI_COMMAND=" + c.cmd, "CNI_CONTAINERID=" + c.containerID, "CNI_NETNS=" + c.netns,
			"CNI_IFNAME=" + c.ifname, "CNI_PATH=/usr/lib/cni", "CNI_ARGS=" + c.args}
	}
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, env...)
	cmd.Stdin = bytes.NewReader(c.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := reply{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		r.err = &cniErr{}
		if jerr := json.Unmarshal(stdout.Bytes(), r.err); jerr != nil {
			n.t.Fatalf("plugin %s exited %d without a JSON error object on stdout: %v\nstdout: %s\nstderr: %s", c.cmd, r.code, jerr, r.stdout, r.stderr)
		}
	case err != nil:
		n.t.Fatalf("run plugin: %v", err)
	}
	return r
}

// ok runs the plugin and fails the test unless it succeeds.
func (n *node) ok(c call) string {
	n.t.Helper()
	r := n.plugin(c)
	if r.code != 0 {
		n.t.Fatalf("plugin %s: exit %d: %+v\nstderr: %s", c.cmd, r.code, r.err, r.stderr)
	}
	return r.stdout
}

// fails runs the plugin and checks that it fails with code and a message
// containing msg.
func (n *node) fails(c call, code uint, msg string) *cniErr {
	n.t.Helper()
	r := n.plugin(c)
	if r.code == 0 {
		n.t.Fatalf("plugin %s succeeded, want error %d %q:\n%s", c.cmd, code, msg, r.stdout)
	}
	if r.err.Code != code || !strings.Contains(r.err.Msg+" "+r.err.Details, msg) {
		n.t.Fatalf("plugin %s: error %+v, want code %d with %q\nstderr: %s", c.cmd, r.err, code, msg, r.stderr)
	}
	return r.err
}

// containerNS makes a network namespace as a runtime does (a bind-mounted
// file the plugin gets by path) and returns its path.
func (n *node) containerNS(name string) string {
	n.t.Helper()
	ns, err := rtnl.CreateNetNS(n.dir, name)
	if err != nil {
		n.t.Fatal(err)
	}
	ns.Close()
	return filepath.Join(n.dir, name)
}

// in runs a command in the namespace at path.
func in(t testing.TB, path string, argv ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=" + path}, argv...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", strings.Join(argv, " "), path, err, out)
	}
	return string(out)
}

// snapshot lists what the node has that an operation may leave behind:
// namespaces, links of the overlay namespace, state and store files (lock
// files are not state, nor the node's advertisement in the store, which
// its daemon writes and reset removes).
func (n *node) snapshot() string {
	n.t.Helper()
	var b strings.Builder
	names, _ := rtnl.ListNetNS(n.dir)
	sort.Strings(names)
	fmt.Fprintf(&b, "netns: %v\n", names)
	if out, err := exec.Command("nsenter", "--net="+filepath.Join(n.dir, "overns"), "ip", "-j", "link", "show").Output(); err == nil {
		var ls []struct {
			Name string `json:"ifname"`
		}
		if err := json.Unmarshal(out, &ls); err != nil {
			n.t.Fatalf("ip -j link show: %v: %s", err, out)
		}
		var links []string
		for _, l := range ls {
			links = append(links, l.Name)
		}
		sort.Strings(links)
		fmt.Fprintf(&b, "overns links: %v\n", links)
	}
	// The per-port rules attach installs (anti-spoofing), by port name;
	// stateless (-s): a counter that a packet from the container moved
	// between two snapshots is not a leftover.
	if out, err := exec.Command("nsenter", "--net="+filepath.Join(n.dir, "overns"), "nft", "-s", "list", "ruleset").Output(); err == nil {
		var ports []string
		for _, l := range strings.Split(string(out), "\n") {
			if i := strings.Index(l, "ve-cni-"); i >= 0 {
				ports = append(ports, strings.TrimSpace(l))
			}
		}
		fmt.Fprintf(&b, "nft lines naming ve-cni-*: %v\n", ports)
	}
	for _, root := range []string{n.state, strings.TrimPrefix(n.store, "dir:")} {
		var files []string
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !strings.HasSuffix(d.Name(), ".lock") && // locks are not state
				!strings.HasPrefix(strings.TrimPrefix(p, root), "/nodes/") {
				data, _ := os.ReadFile(p)
				files = append(files, strings.TrimPrefix(p, root)+"="+strings.TrimSpace(string(data)))
			}
			return nil
		})
		sort.Strings(files)
		fmt.Fprintf(&b, "%s: %v\n", filepath.Base(root), files)
	}
	return b.String()
}

// deleteNS deletes the namespace name of n's netns dir (a runtime removing
// its container's).
func deleteNS(t *testing.T, n *node, name string) {
	t.Helper()
	if err := rtnl.DeleteNetNS(n.dir, name); err != nil {
		t.Fatal(err)
	}
}

// ovdaemon is an `overlayd run` of a node.
type ovdaemon struct {
	cmd  *exec.Cmd
	done chan error
	mu   sync.Mutex
	logs bytes.Buffer
}

func (d *ovdaemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.Write(p)
}

func (d *ovdaemon) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// startDaemon starts `overlayd run` in the node's netns and waits until it
// runs; it is stopped at the end of the test.
func (n *node) startDaemon() *ovdaemon {
	n.t.Helper()
	argv := []string{"--net=/var/run/netns/" + n.name, filepath.Join(binaries(n.t), "overlayd"), "run",
		"--netns-dir", n.dir, "--state-dir", n.state, "--store", n.store}
	d := &ovdaemon{cmd: exec.Command("nsenter", argv...), done: make(chan error, 1)}
	d.cmd.Stderr = d
	if err := d.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t := n.t
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(d.String(), "msg=reconciled") {
		if time.Now().After(deadline) {
			t.Fatalf("overlayd run did not start:\n%s", d)
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("overlayd run exited: %v\n%s", err, d)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return d
}

// stop sends SIGTERM and waits for the daemon to exit.
func (d *ovdaemon) stop(t *testing.T) {
	if d.cmd.Process == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil && !strings.Contains(err.Error(), "already") {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Errorf("overlayd run exited with %v:\n%s", err, d)
			}
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("overlayd run did not stop on SIGTERM:\n%s", d)
	}
}
