package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
)

// leaseRegistry records Register calls and delivers a scripted change feed.
type leaseRegistry struct {
	mu         sync.Mutex
	registered []registry.Record
	fail       map[netip.Addr]error
	changes    []registry.Change
}

func (r *leaseRegistry) Register(_ context.Context, rec registry.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.fail[rec.IP]; err != nil {
		return err
	}
	r.registered = append(r.registered, rec)
	return nil
}

func (r *leaseRegistry) got() []registry.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.registered)
}

func (r *leaseRegistry) LookupMAC(context.Context, netip.Addr) (ethaddr.MAC, error) {
	return ethaddr.MAC{}, registry.ErrNotFound
}
func (r *leaseRegistry) LookupVTEP(context.Context, ethaddr.MAC) (netip.Addr, error) {
	return netip.Addr{}, registry.ErrNotFound
}
func (r *leaseRegistry) Unregister(context.Context, registry.Record) error { return nil }
func (r *leaseRegistry) List(context.Context) ([]registry.Record, error)   { return nil, nil }
func (r *leaseRegistry) Close() error                                      { return nil }
func (r *leaseRegistry) Watch(ctx context.Context) (<-chan registry.Change, error) {
	ch := make(chan registry.Change, len(r.changes))
	for _, c := range r.changes {
		ch <- c
	}
	close(ch)
	return ch, nil
}

// TestRegisterEndpoints: the daemon registers this node's endpoints again at
// start (onto its lease); a record owned elsewhere is skipped, another
// failure stops the start.
func TestRegisterEndpoints(t *testing.T) {
	a, b, c := endpoint("a", "198.51.100.2/24", localVTEP), endpoint("b", "198.51.100.3/24", localVTEP), endpoint("c", "198.51.100.4/24", localVTEP)
	n := writeState(t, a, b, c)
	log := slog.New(slog.DiscardHandler)

	reg := &leaseRegistry{fail: map[netip.Addr]error{b.IP.Addr(): fmt.Errorf("%w: taken", registry.ErrConflict)}}
	moved, err := registerEndpoints(t.Context(), reg, n, log)
	if err != nil || moved != 2 || !slices.Equal(reg.got(), []registry.Record{a.Records()[0], c.Records()[0]}) {
		t.Errorf("registerEndpoints = %d, %v; registered %v", moved, err, reg.got())
	}

	broken := errors.New("etcd unreachable")
	reg = &leaseRegistry{fail: map[netip.Addr]error{b.IP.Addr(): broken}}
	if _, err := registerEndpoints(t.Context(), reg, n, log); !errors.Is(err, broken) {
		t.Errorf("registerEndpoints with a broken store: %v", err)
	}
}

// TestAdoptLocal: endpoints of the state directory at this node's VTEP whose
// records the lease does not hold are registered again (moved onto the
// lease), once; others are left alone.
func TestAdoptLocal(t *testing.T) {
	mine := endpoint("mine", "198.51.100.2/24", localVTEP)
	held := endpoint("held", "198.51.100.3/24", localVTEP)
	elsewhere := endpoint("elsewhere", "198.51.100.4/24", netip.MustParseAddr("192.0.2.3"))
	n := writeState(t, mine, held, elsewhere)
	reg := &leaseRegistry{}
	owned := func() []registry.Record { return append(reg.got(), held.Records()[0]) }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		adoptLocal(ctx, reg, owned, n, localVTEP, 10*time.Millisecond, slog.New(slog.DiscardHandler))
		close(done)
	}()
	eventually(t, "the local record registered", func() bool { return len(reg.got()) > 0 })
	time.Sleep(50 * time.Millisecond) // more rounds: nothing more to move
	cancel()
	<-done
	if got := reg.got(); !slices.Equal(got, []registry.Record{mine.Records()[0]}) {
		t.Errorf("registered %v, want only %v, once", got, mine.Records()[0])
	}
}

// TestLocalEndpoints: of the records a lost lease held, those still
// endpoints in the state directory are kept; all are kept when it cannot
// be read.
func TestLocalEndpoints(t *testing.T) {
	a, b := endpoint("a", "198.51.100.2/24", localVTEP), endpoint("b", "198.51.100.3/24", localVTEP)
	g := endpoint("gone", "198.51.100.4/24", localVTEP)
	gone := g.Records()[0]
	moved := a.Records()[0]
	moved.VTEP = netip.MustParseAddr("192.0.2.99")
	n := writeState(t, a, b)
	owned := []registry.Record{a.Records()[0], gone, b.Records()[0], moved}
	if got, want := localEndpoints(n, slices.Clone(owned)), []registry.Record{a.Records()[0], b.Records()[0]}; !slices.Equal(got, want) {
		t.Errorf("localEndpoints = %v, want %v", got, want)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "endpoints"), nil, 0o644); err != nil { // not a directory
		t.Fatal(err)
	}
	unreadable := overlay.NewNode(overlay.NodeOptions{StateDir: dir})
	if got := localEndpoints(unreadable, slices.Clone(owned)); !slices.Equal(got, owned) {
		t.Errorf("localEndpoints with an unreadable state directory = %v, want every record %v", got, owned)
	}
}

// leasedRegistry is a leaseRegistry that holds its records on a lease
// (registry.Leaser).
type leasedRegistry struct{ *leaseRegistry }

func (r leasedRegistry) Owned() []registry.Record { return r.got() }
func (r leasedRegistry) Stats() registry.LeaseStats {
	return registry.LeaseStats{LeaseID: 0x2a, LeaseUp: true, LeaseLost: 3}
}

// TestOpenStoreLease: the daemon opens its store for the overlay's VNI on
// this node's lease (its VTEP, and a Keep that checks the state
// directory). On a store that holds records on leases it registers the
// node's endpoints again, exports the lease's counters and adopts later
// attaches; on one without, it does none of that.
func TestOpenStoreLease(t *testing.T) {
	a, gone := endpoint("a", "198.51.100.2/24", localVTEP), endpoint("gone", "198.51.100.3/24", localVTEP)
	for _, leased := range []bool{true, false} {
		plain := &leaseRegistry{}
		var reg registry.Registry = plain
		if leased {
			reg = leasedRegistry{plain}
		}
		var got registry.Options
		schemes := map[string]registry.Opener{"test": func(_ context.Context, _ string, o registry.Options) (registry.Registry, error) {
			got = o
			return reg, nil
		}}
		d, err := open(t.Context(), Config{Node: writeState(t, a), Store: "test:x", Schemes: schemes}, newFakeKernel())
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if got.VNI != 42 || got.Lease == nil || got.Lease.VTEP != localVTEP || got.Lease.Keep == nil {
			t.Fatalf("store opened with %+v, want the overlay's VNI 42 on a lease of VTEP %s", got, localVTEP)
		}
		if kept := got.Lease.Keep([]registry.Record{a.Records()[0], gone.Records()[0]}); !slices.Equal(kept, []registry.Record{a.Records()[0]}) {
			t.Errorf("Keep = %v, want the state directory's %v", kept, a.Records()[0])
		}
		var b bytes.Buffer
		if err := d.Metrics().WritePrometheus(&b); err != nil {
			t.Fatal(err)
		}
		var want []registry.Record
		if leased {
			want = []registry.Record{a.Records()[0]}
		}
		if !slices.Equal(plain.got(), want) || strings.Contains(b.String(), "overlayd_etcd_lease_lost_total 3") != leased || (d.adopt != nil) != leased {
			t.Errorf("leased %v: registered %v, adoption %v, metrics:\n%s", leased, plain.got(), d.adopt != nil, b.String())
		}
	}
}

// TestOpenRefusesIPv6OnSpans: the daemon refuses to serve a dual-stack
// overlay, or one on an IPv6 underlay, from a store of spans (the
// Kubernetes store: IPv4 podCIDRs at IPv4 VTEPs), naming the setting.
func TestOpenRefusesIPv6OnSpans(t *testing.T) {
	for _, c := range []struct {
		name string
		gw6  string
		vtep netip.Addr
	}{
		{"dual-stack", "2001:db8:42::1/64", localVTEP},
		{"ipv6 underlay", "", netip.MustParseAddr("2001:db8::2")},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := overlay.DefaultConfig()
			if c.gw6 != "" {
				cfg.Gateway6 = netip.MustParsePrefix(c.gw6)
			}
			ov := overlay.Overlay{Config: cfg, VTEP: c.vtep, VTEPSource: "--local", UnderlayDev: "eth1", UnderlayMTU: 1500}
			writeJSON(t, filepath.Join(dir, "overlay.json"), map[string]any{"version": 1, "overlay": ov})
			node := overlay.NewNode(overlay.NodeOptions{StateDir: dir, NetNSDir: "/nonexistent/netns"})
			schemes := map[string]registry.Opener{"kube": func(context.Context, string, registry.Options) (registry.Registry, error) {
				return kubenode.New(t.TempDir()), nil
			}}
			d, err := open(t.Context(), Config{Node: node, Store: "kube:", Schemes: schemes}, newFakeKernel())
			if err == nil {
				d.Close()
			}
			var se *SettingError
			if !errors.Is(err, overlay.ErrSpansIPv4Only) || !errors.As(err, &se) || se.Setting != SettingStore {
				t.Fatalf("open = %v, want the store setting refused with ErrSpansIPv4Only", err)
			}
		})
	}
}
