package resolver

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/rtnl"
)

// resolverLab is one node's overlay namespace (bridge + vxlan with proxy,
// l2miss, l3miss) with one container attached, built with iproute2 so that
// the resolver is tested against a topology it did not build.
type resolverLab struct {
	ns        *rtnl.NetNS
	over, ctr string // namespace names
	conn      *rtnl.Conn
	vxlan     int32
	store     *dirstore.Store
	logs      *logBuffer // the running resolver's log (set by start)
}

func newResolverLab(t *testing.T) *resolverLab {
	t.Helper()
	ns, over := nstest.NetNS(t, "ovr")
	_, ctr := nstest.NetNS(t, "ctr")
	run := func(netns string, args ...string) { nstest.Run(t, netns, args[0], args[1:]...) }
	run(over, "ip", "link", "add", "br0", "type", "bridge")
	run(over, "ip", "addr", "add", "198.51.100.1/24", "dev", "br0")
	run(over, "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789",
		"local", "192.0.2.2", "proxy", "l2miss", "l3miss", "nolearning")
	run(over, "ip", "link", "set", "vx0", "master", "br0")
	run(over, "ip", "link", "add", "vc0", "type", "veth", "peer", "name", "eth0", "netns", ctr)
	run(over, "ip", "link", "set", "vc0", "master", "br0")
	for _, dev := range []string{"br0", "vx0", "vc0"} {
		run(over, "ip", "link", "set", dev, "up")
	}
	run(ctr, "ip", "link", "set", "eth0", "address", "02:42:c6:33:64:02")
	run(ctr, "ip", "addr", "add", "198.51.100.2/24", "dev", "eth0")
	run(ctr, "ip", "link", "set", "eth0", "up")

	conn := nstest.Dial(t, ns)
	l, err := conn.LinkByName("vx0")
	if err != nil {
		t.Fatal(err)
	}
	store, err := dirstore.New(filepath.Join(t.TempDir(), "store"))
	if err != nil {
		t.Fatal(err)
	}
	return &resolverLab{ns: ns, over: over, ctr: ctr, conn: conn, vxlan: l.Index, store: store}
}

// start runs a resolver fed by a real monitor until the test ends (or stop
// is called).
func (lab *resolverLab) start(t *testing.T) (r *Resolver, stop func()) {
	t.Helper()
	mon, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: lab.ns})
	if err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	lab.logs = logs
	r, err = New(Config{
		Conn: lab.conn, Registry: lab.store, Vxlan: lab.vxlan, VNI: 42, Port: 4789,
		Subnet:    netip.MustParsePrefix("198.51.100.0/24"),
		LocalVTEP: netip.MustParseAddr("192.0.2.2"),
		Logger:    newTestLogger(logs),
		Tuning:    Tuning{ReconcileInterval: -1}, // passes are run by hand
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx, mon) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		mon.Close()
		if t.Failed() {
			t.Logf("resolver log:\n%s", logs)
		}
	}
	t.Cleanup(stop)
	eventually(t, "the first reconcile pass", func() bool { return r.Metrics().Snapshot().Reconciles >= 1 })
	return r, stop
}

func (lab *resolverLab) register(t *testing.T, ip, mac, vtep string) registry.Record {
	t.Helper()
	rec := registry.Record{IP: netip.MustParseAddr(ip), MAC: mustMAC(t, mac), VTEP: netip.MustParseAddr(vtep)}
	if err := lab.store.Register(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func mustMAC(t *testing.T, s string) ethaddr.MAC {
	t.Helper()
	m, err := ethaddr.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ipNeigh is `ip -j neigh` output.
type ipNeigh struct {
	Dst      string   `json:"dst"`
	Dev      string   `json:"dev"`
	LLAddr   string   `json:"lladdr"`
	State    []string `json:"state"`
	Protocol string   `json:"protocol"`
}

// bridgeFDB is `bridge -j fdb` output.
type bridgeFDB struct {
	MAC   string   `json:"mac"`
	Dst   string   `json:"dst"`
	VNI   int      `json:"vni"`
	Port  int      `json:"port"`
	Flags []string `json:"flags"`
	State string   `json:"state"`
}

func (lab *resolverLab) neighbours(t *testing.T) []ipNeigh {
	t.Helper()
	var out []ipNeigh
	if err := json.Unmarshal([]byte(nstest.Run(t, lab.over, "ip", "-j", "neigh", "show", "dev", "vx0")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func (lab *resolverLab) fdb(t *testing.T) []bridgeFDB {
	t.Helper()
	var out []bridgeFDB
	if err := json.Unmarshal([]byte(nstest.Run(t, lab.over, "bridge", "-j", "-d", "fdb", "show", "dev", "vx0")), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func findNeigh(ns []ipNeigh, ip string) *ipNeigh {
	for i := range ns {
		if ns[i].Dst == ip {
			return &ns[i]
		}
	}
	return nil
}

// findFDB returns the vxlan's own (self) entry for mac; the bridge also
// shows what it learned on its vxlan port (the proxy's ARP replies).
func findFDB(fs []bridgeFDB, mac string) *bridgeFDB {
	for i := range fs {
		if fs[i].MAC == mac && slices.Contains(fs[i].Flags, "self") {
			return &fs[i]
		}
	}
	return nil
}

// ping sends a few echo requests from the container; the remote VTEP does
// not exist, so only the ARP exchange (answered by the vxlan proxy) and the
// misses matter, not the replies.
func (lab *resolverLab) ping(ip string) {
	nstest.Output(lab.ctr, "ping", "-c", "2", "-i", "0.5", "-W", "1", ip)
}

// TestResolverKernelL3Miss: a real ARP from a container raises an L3 miss;
// the resolver answers from a DirStore and programs, in one batch, a
// PERMANENT neighbour entry (which the vxlan proxy then uses to answer the
// container's ARP) and the FDB entry to the remote VTEP.
func TestResolverKernelL3Miss(t *testing.T) {
	lab := newResolverLab(t)
	lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	r, _ := lab.start(t)

	lab.ping("198.51.100.3")
	eventually(t, "the L3 miss to be resolved", func() bool { return r.Metrics().Snapshot().Resolutions["l3miss"] >= 1 })

	n := findNeigh(lab.neighbours(t), "198.51.100.3")
	if n == nil || n.LLAddr != "02:42:c6:33:64:03" || !slices.Contains(n.State, "PERMANENT") || n.Protocol != "214" {
		t.Errorf("neighbour entry = %+v, want 198.51.100.3 lladdr 02:42:c6:33:64:03 PERMANENT proto 214", n)
	}
	f := findFDB(lab.fdb(t), "02:42:c6:33:64:03")
	// The kernel leaves vni and port out of its reply when they equal the
	// device's own (42, 4789), which is what the resolver programs.
	if f == nil || f.Dst != "192.0.2.3" || f.State != "permanent" || !slices.Contains(f.Flags, "self") ||
		!slices.Contains(f.Flags, "extern_learn") || (f.VNI != 0 && f.VNI != 42) || (f.Port != 0 && f.Port != 4789) {
		t.Errorf("FDB entry = %+v, want 02:42:c6:33:64:03 dst 192.0.2.3 self extern_learn permanent", f)
	}
	// The proxy answered the container's ARP retry from the entry.
	var cn []ipNeigh
	json.Unmarshal([]byte(nstest.Run(t, lab.ctr, "ip", "-j", "neigh", "show", "198.51.100.3", "dev", "eth0")), &cn)
	if len(cn) != 1 || cn[0].LLAddr != "02:42:c6:33:64:03" {
		t.Errorf("container's ARP entry for 198.51.100.3 = %+v, want lladdr 02:42:c6:33:64:03", cn)
	}
	s := r.Metrics().Snapshot()
	if s.BatchMessages < 2 || s.ProgrammedNeigh != 1 || s.ProgrammedFDB != 1 {
		t.Errorf("metrics: %+v", s)
	}

	// An address outside the subnet and an unknown one program nothing.
	lab.ping("198.51.100.77")
	eventually(t, "the unknown IP's lookup", func() bool { return r.Metrics().Snapshot().Unresolved["not_found"] >= 1 })
	if findNeigh(lab.neighbours(t), "198.51.100.77") != nil {
		t.Error("entry programmed for an unregistered IP")
	}
}

// TestResolverKernelL2Miss: a frame to a MAC the vxlan does not know raises
// an L2 miss; the resolver programs the FDB entry.
func TestResolverKernelL2Miss(t *testing.T) {
	lab := newResolverLab(t)
	lab.register(t, "198.51.100.4", "02:42:c6:33:64:04", "192.0.2.4")
	r, _ := lab.start(t)
	// The container knows the MAC already: no ARP, straight to the frame.
	nstest.Run(t, lab.ctr, "ip", "neigh", "replace", "198.51.100.4", "lladdr", "02:42:c6:33:64:04", "dev", "eth0")
	lab.ping("198.51.100.4")
	eventually(t, "the L2 miss to be resolved", func() bool { return r.Metrics().Snapshot().Resolutions["l2miss"] >= 1 })
	f := findFDB(lab.fdb(t), "02:42:c6:33:64:04")
	if f == nil || f.Dst != "192.0.2.4" || f.State != "permanent" {
		t.Errorf("FDB entry = %+v, want 02:42:c6:33:64:04 dst 192.0.2.4 permanent", f)
	}
	if findNeigh(lab.neighbours(t), "198.51.100.4") != nil {
		t.Error("an L2 miss programmed a neighbour entry")
	}
}

// TestResolverKernelBadRecord: a malformed MAC, a VTEP of the wrong family and
// an unreadable record are skipped, never installed, and the resolver goes on.
func TestResolverKernelBadRecord(t *testing.T) {
	lab := newResolverLab(t)
	if err := os.WriteFile(filepath.Join(lab.store.Root(), "arp", "198.51.100.5"), []byte("02:42:zz:33:64:05\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lab.register(t, "198.51.100.6", "02:42:c6:33:64:06", "192.0.2.3")
	if err := os.WriteFile(filepath.Join(lab.store.Root(), "fdb", "02:42:c6:33:64:06"), []byte("2001:db8::6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Unreadable: a directory where the record file should be.
	if err := os.Mkdir(filepath.Join(lab.store.Root(), "arp", "198.51.100.7"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, _ := lab.start(t)
	lab.ping("198.51.100.5")
	lab.ping("198.51.100.6")
	lab.ping("198.51.100.7")
	eventually(t, "the three records to be refused", func() bool {
		s := r.Metrics().Snapshot()
		return s.Unresolved["bad_record"]+s.Unresolved["registry_error"] >= 3
	})
	if ns, fs := lab.neighbours(t), lab.fdb(t); findNeigh(ns, "198.51.100.5") != nil || findNeigh(ns, "198.51.100.6") != nil ||
		findNeigh(ns, "198.51.100.7") != nil || findFDB(fs, "02:42:c6:33:64:06") != nil {
		t.Errorf("bad record installed: neigh %+v fdb %+v", ns, fs)
	}
}

// TestResolverKernelAdoptAndReconcile: a restarted resolver adopts the
// entries its predecessor programmed (nothing flushed), and reconcile passes
// follow the registry: a container moved to another VTEP gets its FDB entry
// updated, a detached one gets both entries removed; entries of others are
// left alone.
func TestResolverKernelAdoptAndReconcile(t *testing.T) {
	lab := newResolverLab(t)
	rec := lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	r1, stop1 := lab.start(t)
	lab.ping("198.51.100.3")
	eventually(t, "the first resolution", func() bool { return r1.Metrics().Snapshot().Resolutions["l3miss"] >= 1 })
	stop1()
	// An entry that is not ours must survive everything below.
	nstest.Run(t, lab.over, "ip", "neigh", "add", "198.51.100.50", "lladdr", "02:42:c6:33:64:32", "dev", "vx0")
	nstest.Run(t, lab.over, "bridge", "fdb", "add", "02:42:c6:33:64:32", "dev", "vx0", "self", "dst", "192.0.2.9")

	r2, _ := lab.start(t) // a restart: the first pass adopts
	if n := findNeigh(lab.neighbours(t), "198.51.100.3"); n == nil {
		t.Fatal("restart flushed the neighbour entry")
	}
	if got := len(r2.Entries()); got != 2 {
		t.Fatalf("restarted resolver tracks %d entries, want 2 adopted: %+v", got, r2.Entries())
	}
	if s := r2.Metrics().Snapshot(); s.ReconcileChanges["adopted"] != 2 {
		t.Errorf("adopted = %d, want 2", s.ReconcileChanges["adopted"])
	}

	// The container moves to node 192.0.2.4.
	ctx := context.Background()
	if err := lab.store.Unregister(ctx, rec); err != nil {
		t.Fatal(err)
	}
	lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.4")
	st, err := r2.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Updated != 1 || st.Removed != 0 {
		t.Errorf("reconcile after a move: %+v, want 1 updated", st)
	}
	if f := findFDB(lab.fdb(t), "02:42:c6:33:64:03"); f == nil || f.Dst != "192.0.2.4" {
		t.Errorf("FDB entry after the move = %+v, want dst 192.0.2.4", f)
	}

	// The container is detached.
	if err := lab.store.Unregister(ctx, registry.Record{IP: rec.IP, MAC: rec.MAC, VTEP: netip.MustParseAddr("192.0.2.4")}); err != nil {
		t.Fatal(err)
	}
	st, err = r2.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Removed != 2 {
		t.Errorf("reconcile after detach: %+v, want 2 removed", st)
	}
	ns, fs := lab.neighbours(t), lab.fdb(t)
	if findNeigh(ns, "198.51.100.3") != nil || findFDB(fs, "02:42:c6:33:64:03") != nil {
		t.Errorf("stale entries remain: neigh %+v fdb %+v", ns, fs)
	}
	if findNeigh(ns, "198.51.100.50") == nil || findFDB(fs, "02:42:c6:33:64:32") == nil {
		t.Errorf("reconcile removed entries it did not program: neigh %+v fdb %+v", ns, fs)
	}
	if len(r2.Entries()) != 0 {
		t.Errorf("still tracking %+v", r2.Entries())
	}
}

// TestResolverKernelOverrunResync: an overrun triggers a resync pass at
// once, which notices entries deleted behind the resolver's back.
func TestResolverKernelOverrunResync(t *testing.T) {
	lab := newResolverLab(t)
	lab.register(t, "198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3")
	r, _ := lab.start(t)
	lab.ping("198.51.100.3")
	eventually(t, "the resolution", func() bool { return r.Metrics().Snapshot().ProgrammedNeigh == 1 })
	nstest.Run(t, lab.over, "ip", "neigh", "del", "198.51.100.3", "dev", "vx0")
	before := r.Metrics().Snapshot().Reconciles
	r.HandleOverrun()
	eventually(t, "the resync pass", func() bool { return r.Metrics().Snapshot().Reconciles > before })
	if s := r.Metrics().Snapshot(); s.ProgrammedNeigh != 0 || s.Overruns != 1 {
		t.Errorf("after resync: programmed neigh %d, overruns %d; want 0, 1", s.ProgrammedNeigh, s.Overruns)
	}
	// And the next miss is resolved again (once the container's own ARP
	// cache forgets the address, its ARP raises a miss).
	nstest.Run(t, lab.ctr, "ip", "neigh", "flush", "dev", "eth0")
	lab.ping("198.51.100.3")
	eventually(t, "the re-resolution", func() bool { return r.Metrics().Snapshot().ProgrammedNeigh == 1 })
}
