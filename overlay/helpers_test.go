package overlay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// testNode is a simulated node: a throwaway "host" netns with an underlay
// device, its own named-netns directory and state directory, and a registry.
type testNode struct {
	t        *testing.T
	host     *rtnl.NetNS
	hostName string // in /var/run/netns
	netnsDir string
	stateDir string
	store    *dirstore.Store
	node     *Node
}

// newTestNode makes a node whose underlay is ul0 (one end of a veth pair,
// the other end ulpeer, both in the node's host netns) with addr (e.g.
// 192.0.2.2/24) and MTU 1500, sharing store (a new one if nil). An invalid
// addr leaves the node without underlay.
func newTestNode(t *testing.T, tag string, addr netip.Prefix, store *dirstore.Store) *testNode {
	t.Helper()
	host, name := nstest.NetNS(t, tag)
	tn := &testNode{t: t, host: host, hostName: name, netnsDir: tempNetNSDir(t), stateDir: t.TempDir(), store: store}
	if tn.store == nil {
		tn.store = newTestStore(t)
	}
	if addr.IsValid() {
		c := nstest.Dial(t, host)
		// No dummy driver on every kernel: a veth pair whose peer stays here.
		ulink := rtnl.NewVethPair("ul0", rtnl.LinkMessage{Name: "ulpeer", MTU: 1500})
		ulink.MTU = 1500
		if err := c.LinkAdd(ulink); err != nil {
			t.Fatalf("create ul0: %v", err)
		}
		l, err := c.LinkByName("ul0")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddressAdd(l.Index, addr); err != nil {
			t.Fatal(err)
		}
		if err := c.LinkSetUp(l.Index); err != nil {
			t.Fatal(err)
		}
		if p, err := c.LinkByName("ulpeer"); err != nil || c.LinkSetUp(p.Index) != nil {
			t.Fatalf("ulpeer up: %v", err)
		}
	}
	tn.node = NewNode(NodeOptions{NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Registry: tn.store, Logger: nodeTestLogger(t)})
	return tn
}

func newTestStore(t *testing.T) *dirstore.Store {
	t.Helper()
	s, err := dirstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// nodeTestLogger logs through t.Log.
func nodeTestLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// tempNetNSDir returns a directory for named namespaces that is cleaned up
// at the end of the test: every namespace in it deleted, then the shared
// bind mount rtnl.CreateNetNS made of it lazily unmounted, before the
// TempDir removal.
func tempNetNSDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() {
		names, _ := rtnl.ListNetNS(dir)
		for _, n := range names {
			if err := rtnl.DeleteNetNS(dir, n); err != nil {
				t.Errorf("cleanup: delete netns %s: %v", n, err)
			}
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			t.Errorf("cleanup: unmount %s: %v", dir, err)
		}
	})
	return dir
}

// do runs fn inside the node's host netns.
func (tn *testNode) do(fn func() error) error { return tn.host.Do(fn) }

func (tn *testNode) create(cfg Config) (*Overlay, error) {
	var ov *Overlay
	err := tn.do(func() (err error) { ov, err = tn.node.Create(context.Background(), cfg); return err })
	return ov, err
}

func (tn *testNode) attach(req AttachRequest) (*Endpoint, error) {
	var ep *Endpoint
	err := tn.do(func() (err error) { ep, err = tn.node.Attach(context.Background(), req); return err })
	return ep, err
}

func (tn *testNode) detach(name string) error {
	return tn.do(func() error { return tn.node.Detach(context.Background(), name) })
}

func (tn *testNode) reset() error {
	return tn.do(func() error { return tn.node.Reset(context.Background()) })
}

func (tn *testNode) status() (*Status, error) {
	var s *Status
	err := tn.do(func() (err error) { s, err = tn.node.Status(context.Background()); return err })
	return s, err
}

func (tn *testNode) mustCreate(cfg Config) *Overlay {
	tn.t.Helper()
	ov, err := tn.create(cfg)
	if err != nil {
		tn.t.Fatalf("create: %v", err)
	}
	return ov
}

func (tn *testNode) mustAttach(req AttachRequest) *Endpoint {
	tn.t.Helper()
	ep, err := tn.attach(req)
	if err != nil {
		tn.t.Fatalf("attach %s: %v", req.Name, err)
	}
	return ep
}

// netnsNames lists the namespaces in the node's netns dir.
func (tn *testNode) netnsNames() []string {
	tn.t.Helper()
	names, err := rtnl.ListNetNS(tn.netnsDir)
	if err != nil {
		tn.t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

// path returns the path of a namespace of this node.
func (tn *testNode) path(name string) string { return filepath.Join(tn.netnsDir, name) }

// links returns "name:kind" of every link in namespace name of this node
// ("" for the node's host netns), read with iproute2.
func (tn *testNode) links(name string) []string {
	tn.t.Helper()
	path := filepath.Join(rtnl.DefaultNetNSDir, tn.hostName)
	if name != "" {
		path = tn.path(name)
	}
	var ls []ipLink
	mustJSON(tn.t, runIn(tn.t, path, "ip", "-d", "-j", "link", "show"), &ls)
	var out []string
	for _, l := range ls {
		out = append(out, l.Name+":"+l.Info.Kind)
	}
	sort.Strings(out)
	return out
}

// stateFiles lists the files in the state dir (relative paths).
func (tn *testNode) stateFiles() []string {
	tn.t.Helper()
	var out []string
	filepath.WalkDir(tn.stateDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != ".lock" { // lock files are not state
			rel, _ := filepath.Rel(tn.stateDir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// storeFiles lists the record files of a DirStore (relative paths; not
// the network file).
func storeFiles(t *testing.T, s *dirstore.Store) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(s.Root(), func(p string, d fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(s.Root(), p)
		if err == nil && !d.IsDir() && rel != dirstore.NetworkFile { // the network is not a record
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// runIn runs a command in the namespace bound at path (nsenter --net) and
// returns its stdout; a failure fails the test.
func runIn(t *testing.T, path string, name string, args ...string) string {
	t.Helper()
	out, err := outputIn(path, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// outputIn is runIn returning the error.
func outputIn(path string, name string, args ...string) (string, error) {
	argv := append([]string{"nsenter", "--net=" + path, name}, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
}

// ipLink is the part of `ip -d -j link` the tests read.
type ipLink struct {
	Index     int32    `json:"ifindex"`
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	MTU       uint32   `json:"mtu"`
	Master    string   `json:"master"`
	Address   string   `json:"address"`
	Operstate string   `json:"operstate"`
	Link      string   `json:"link"`
	LinkIndex int32    `json:"link_index"`
	Info      struct {
		Kind string `json:"info_kind"`
		Data struct {
			ID       uint32 `json:"id"`
			Port     uint16 `json:"port"`
			Local    string `json:"local"`
			Learning bool   `json:"learning"`
			Proxy    bool   `json:"proxy"`
			L2Miss   bool   `json:"l2miss"`
			L3Miss   bool   `json:"l3miss"`
		} `json:"info_data"`
	} `json:"linkinfo"`
}

func (l ipLink) up() bool {
	for _, f := range l.Flags {
		if f == "UP" {
			return true
		}
	}
	return false
}

// ipLinkOf reads one link with `ip -d -j link show dev NAME` in the
// namespace at path.
func ipLinkOf(t *testing.T, path, name string) ipLink {
	t.Helper()
	var ls []ipLink
	mustJSON(t, runIn(t, path, "ip", "-d", "-j", "link", "show", "dev", name), &ls)
	if len(ls) != 1 {
		t.Fatalf("ip link show dev %s: %d links", name, len(ls))
	}
	return ls[0]
}

// testConfig is the default config with the VTEP given by local.
func testConfig(local string) Config {
	cfg := DefaultConfig()
	if local != "" {
		cfg.Local = netip.MustParseAddr(local)
	}
	return cfg
}

func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func recordOf(ip, mac, vtep string) registry.Record {
	m, err := ethaddr.Parse(mac)
	if err != nil {
		panic(err)
	}
	return registry.Record{IP: netip.MustParseAddr(ip), MAC: m, VTEP: netip.MustParseAddr(vtep)}
}
