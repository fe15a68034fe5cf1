package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
	"golang.org/x/sys/unix"
)

// The fake overlay namespace: vxlan1 (ifindex 7) and br0 (ifindex 3).
const (
	fakeVxlan  = 7
	fakeBridge = 3
)

var localVTEP = netip.MustParseAddr("192.0.2.2")

// fakeNamespace answers the requests of a daemon's socket as an overlay
// namespace would: links by name, empty neighbour dumps, ACKed changes.
type fakeNamespace struct {
	links map[string]*rtnl.LinkMessage
}

func newFakeNamespace() *fakeNamespace {
	return &fakeNamespace{links: map[string]*rtnl.LinkMessage{
		"vxlan1": {Index: fakeVxlan, Name: "vxlan1", Info: &rtnl.LinkInfo{Kind: "vxlan", Vxlan: &rtnl.VxlanInfo{
			ID: 42, Port: 4789, Proxy: true, L2Miss: true, L3Miss: true}}},
		"br0": {Index: fakeBridge, Name: "br0", Info: &rtnl.LinkInfo{Kind: "bridge"}},
	}}
}

func (f *fakeNamespace) handle(req rtnltest.Request) ([]rtnltest.Message, error) {
	switch req.Type() {
	case unix.RTM_GETLINK:
		var m rtnl.LinkMessage
		if err := req.Decode(&m); err != nil {
			return nil, err
		}
		l, ok := f.links[m.Name]
		if !ok {
			return nil, unix.ENODEV
		}
		return []rtnltest.Message{rtnltest.Reply(unix.RTM_NEWLINK, l)}, nil
	case unix.RTM_GETNEIGH, unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
		return nil, nil
	}
	return nil, unix.EOPNOTSUPP
}

// fakeMonitor delivers the events a test sends.
type fakeMonitor struct{ events chan rtnl.Event }

func (m *fakeMonitor) Run(ctx context.Context, fn func(*rtnl.Event) error) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev := <-m.events:
			if err := fn(&ev); err != nil {
				return err
			}
		}
	}
}
func (m *fakeMonitor) Stats() rtnl.MonitorStats { return rtnl.MonitorStats{Messages: 5} }
func (m *fakeMonitor) ReceiveBuffer() int       { return 1 << 20 }

// fakeKernel opens a fake namespace on the rtnltest transport.
type fakeKernel struct {
	ns     *fakeNamespace
	tr     *rtnltest.Transport
	mon    *fakeMonitor
	opened []string // netns opened
	closed bool
}

func newFakeKernel() *fakeKernel {
	return &fakeKernel{ns: newFakeNamespace(), mon: &fakeMonitor{events: make(chan rtnl.Event, 16)}}
}

func (k *fakeKernel) open(netnsDir, netns string, rcvbuf int) (kernelSide, error) {
	k.opened = append(k.opened, filepath.Join(netnsDir, netns))
	conn, tr := rtnltest.Dial(k.ns.handle)
	k.tr = tr
	return kernelSide{conn: conn, mon: k.mon, closeFn: func() { conn.Close(); k.closed = true }}, nil
}

// neighRequests decodes the RTM_NEWNEIGH requests sent so far.
func (k *fakeKernel) neighRequests(t *testing.T) []rtnl.NeighMessage {
	t.Helper()
	var out []rtnl.NeighMessage
	for _, r := range k.tr.Requests() {
		if r.Type() != unix.RTM_NEWNEIGH {
			continue
		}
		var m rtnl.NeighMessage
		if err := r.Decode(&m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// writeState records an overlay (and endpoints) in a new state directory, as
// Create and Attach would, and returns a Node on it.
func writeState(t *testing.T, eps ...overlay.Endpoint) *overlay.Node {
	t.Helper()
	dir := t.TempDir()
	cfg := overlay.DefaultConfig()
	ov := overlay.Overlay{Config: cfg, VTEP: localVTEP, VTEPSource: "--local", UnderlayDev: "eth1", UnderlayMTU: 1500}
	writeJSON(t, filepath.Join(dir, "overlay.json"), map[string]any{"version": 1, "overlay": ov})
	for _, ep := range eps {
		writeJSON(t, filepath.Join(dir, "endpoints", ep.Name+".json"), map[string]any{"version": 1, "endpoint": ep})
	}
	return overlay.NewNode(overlay.NodeOptions{StateDir: dir, NetNSDir: "/nonexistent/netns"})
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func endpoint(name, ip string, vtep netip.Addr) overlay.Endpoint {
	p := netip.MustParsePrefix(ip)
	return overlay.Endpoint{Name: name, IP: p, MAC: overlay.DeriveMAC(p.Addr()), IfName: "eth0", HostIf: "ve-" + name, VTEP: vtep}
}

// logBuffer is a goroutine-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDaemonResolvesMiss runs the whole wiring on the fake kernel: the
// overlay found in the state directory, the devices discovered by name, a
// miss from the monitor answered from the directory store with the marked
// neighbour and FDB entries, metrics served, and a clean stop.
func TestDaemonResolvesMiss(t *testing.T) {
	n := writeState(t, endpoint("pink", "198.51.100.2/24", localVTEP))
	storeDir := filepath.Join(t.TempDir(), "store")
	st, err := dirstore.New(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	remote := registry.Record{IP: netip.MustParseAddr("198.51.100.9"), MAC: ethaddr.MAC{2, 0x42, 198, 51, 100, 9}, VTEP: netip.MustParseAddr("192.0.2.3")}
	if err := st.Register(t.Context(), remote); err != nil {
		t.Fatal(err)
	}
	k := newFakeKernel()
	logs := &logBuffer{}
	d, err := open(t.Context(), Config{
		Node: n, Store: "dir:" + storeDir, MetricsAddr: "127.0.0.1:0",
		Logger:   slog.New(slog.NewTextHandler(logs, nil)),
		Resolver: resolver.Tuning{ReconcileInterval: -1, ProactiveMax: 1500},
	}, k)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/nonexistent/netns/overns"}; len(k.opened) != 1 || k.opened[0] != want[0] {
		t.Errorf("opened %v, want %v", k.opened, want)
	}
	if got := d.Topology(); got != (Topology{Vxlan: fakeVxlan, Bridge: fakeBridge, VNI: 42, Port: 4789}) {
		t.Errorf("topology %+v", got)
	}
	if d.Resolver().Mode() != resolver.ModeReactive {
		t.Errorf("mode %v on a dir store, want reactive", d.Resolver().Mode())
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()

	k.mon.events <- rtnl.Event{Kind: rtnl.EventMiss, Miss: rtnl.Miss{Kind: rtnl.MissL3, Ifindex: fakeVxlan, IP: remote.IP}}
	var neigh, fdb *rtnl.NeighMessage
	eventually(t, "the miss's neighbour and FDB requests", func() bool {
		for _, m := range k.neighRequests(t) {
			switch {
			case m.Family == unix.AF_INET && m.Dst == remote.IP:
				neigh = &m
			case m.Family == unix.AF_BRIDGE && m.Dst == remote.VTEP:
				fdb = &m
			}
		}
		return neigh != nil && fdb != nil
	})
	if mac, _ := neigh.MAC(); neigh.Ifindex != fakeVxlan || mac != ethaddr.MAC(remote.MAC) || neigh.Protocol != resolver.ProtocolOverlayd || neigh.State != rtnl.NeighPermanent {
		t.Errorf("neighbour request %+v", neigh)
	}
	if mac, _ := fdb.MAC(); fdb.Ifindex != fakeVxlan || mac != ethaddr.MAC(remote.MAC) || fdb.VNI != 42 || fdb.Port != 4789 ||
		fdb.Flags&(rtnl.NeighFlagExtLearned|rtnl.NeighFlagSelf) != rtnl.NeighFlagExtLearned|rtnl.NeighFlagSelf {
		t.Errorf("FDB request %+v", fdb)
	}

	body := scrape(t, d.MetricsAddr())
	for _, want := range []string{`overlayd_misses_total{kind="l3miss"} 1`, `overlayd_resolutions_total{kind="l3miss"} 1`, "overlayd_monitor_messages_total 5"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if !strings.Contains(logs.String(), "proactive_max=1500") {
		t.Errorf("ProactiveMax 1500 not passed on: %s", logs.String())
	}
	if err := d.Close(); err != nil || !k.closed {
		t.Errorf("Close: %v, kernel side closed %v", err, k.closed)
	}
	if _, err := http.Get("http://" + d.MetricsAddr() + "/metrics"); err == nil {
		t.Error("metrics still served after Close")
	}
}

// publish records in the directory store at url the network of overlay vni
// (the daemon's other settings).
func publish(t *testing.T, url string, vni uint32) {
	t.Helper()
	st, err := dirstore.New(strings.TrimPrefix(url, "dir:"))
	if err != nil {
		t.Fatal(err)
	}
	n := overlay.DefaultConfig().Network()
	n.VNI = vni
	if err := st.PublishNetwork(t.Context(), n); err != nil {
		t.Fatal(err)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDaemonOpenFailures: each failure of New names its cause (the
// setting at fault, for a caller to name it as its user knows it) and
// leaves nothing open.
func TestDaemonOpenFailures(t *testing.T) {
	tests := []struct {
		name    string
		node    *overlay.Node
		cfg     func(*Config)
		ns      func(*fakeNamespace)
		want    string
		is      error
		setting Setting
		opened  bool
	}{
		{name: "no overlay", node: overlay.NewNode(overlay.NodeOptions{StateDir: t.TempDir()}), is: overlay.ErrNotCreated},
		{name: "hybrid on dir store", cfg: func(c *Config) { c.Resolver.Mode = resolver.ModeHybrid }, is: ErrNoFeed, want: "mode hybrid"},
		{name: "unknown store", cfg: func(c *Config) { c.Store = "nosuch://x" }, is: registry.ErrUnknownScheme,
			want: `daemon: store: registry: unknown scheme "nosuch"`, setting: SettingStore},
		{name: "store of another overlay", cfg: func(c *Config) { publish(t, c.Store, 43) }, is: registry.ErrConflict,
			want: "daemon: state directory /", setting: SettingStateDir},
		{name: "no vxlan", ns: func(f *fakeNamespace) { delete(f.links, "vxlan1") }, want: `daemon: vxlan "vxlan1" in netns overns`, opened: true},
		{name: "not a vxlan", ns: func(f *fakeNamespace) { f.links["vxlan1"].Info = &rtnl.LinkInfo{Kind: "dummy"} }, want: "not a vxlan device", opened: true},
		{name: "device VNI differs from the state", ns: func(f *fakeNamespace) { f.links["vxlan1"].Info.Vxlan.ID = 43 }, want: "has VNI 43 port 4789", opened: true},
		{name: "metrics address", cfg: func(c *Config) { c.MetricsAddr = "256.0.0.1:0" }, want: "daemon: metrics address: listen", setting: SettingMetricsAddr, opened: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := tt.node
			if n == nil {
				n = writeState(t)
			}
			cfg := Config{Node: n, Store: "dir:" + filepath.Join(t.TempDir(), "store")}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			k := newFakeKernel()
			if tt.ns != nil {
				tt.ns(k.ns)
			}
			d, err := open(t.Context(), cfg, k)
			if err == nil {
				d.Close()
				t.Fatal("opened")
			}
			if (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want %v containing %q", err, tt.is, tt.want)
			}
			var se *SettingError
			if errors.As(err, &se) != (tt.setting != 0) || (se != nil && se.Setting != tt.setting) {
				t.Errorf("err %v: setting error %+v, want setting %v", err, se, tt.setting)
			}
			if (len(k.opened) > 0) != tt.opened || k.closed != tt.opened {
				t.Errorf("namespace opened %v closed %v, want %v", k.opened, k.closed, tt.opened)
			}
		})
	}
}

// TestDiscoverWarnsWithoutMisses: a vxlan without proxy/l2miss/l3miss is
// used, with a warning; a missing bridge leaves Bridge 0.
func TestDiscoverWarnsWithoutMisses(t *testing.T) {
	f := newFakeNamespace()
	f.links["vxlan1"].Info.Vxlan.L2Miss = false
	delete(f.links, "br0")
	c, _ := rtnltest.Dial(f.handle)
	defer c.Close()
	logs := &logBuffer{}
	topo, err := Discover(c, overlay.DefaultConfig(), slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if topo != (Topology{Vxlan: fakeVxlan, VNI: 42, Port: 4789}) {
		t.Errorf("topology %+v", topo)
	}
	if !strings.Contains(logs.String(), "l2miss=false") {
		t.Errorf("no warning: %q", logs.String())
	}
}

// TestDaemonRunWaitsForAdoption: Run returns only once the adoption of
// local attaches stopped, so that Close never pulls the store from under a
// Register in flight.
func TestDaemonRunWaitsForAdoption(t *testing.T) {
	d, err := open(t.Context(), Config{Node: writeState(t), Store: "dir:" + t.TempDir()}, newFakeKernel())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var stopped atomic.Bool
	d.adopt = func(ctx context.Context) { // an adoption loop that takes a while to stop
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a Register in flight
		stopped.Store(true)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !stopped.Load() {
		t.Error("Run returned while the adoption loop was still running")
	}
}
