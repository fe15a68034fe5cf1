package etcdreg

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

func rec(ip, mac, vtep string) registry.Record {
	return registry.Record{IP: netip.MustParseAddr(ip), MAC: mustMAC(mac), VTEP: netip.MustParseAddr(vtep)}
}

func mustMAC(s string) ethaddr.MAC {
	m, err := ethaddr.Parse(s)
	if err != nil {
		panic(err)
	}
	return m
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// getKV reads one raw key through r's client.
func getKV(t *testing.T, r *Registry, key string) *etcdv3.GetResponse {
	t.Helper()
	resp, err := r.Client().Get(ctxT(t, 3*time.Second), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	return resp
}

func TestRegistryRoundTrip(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "rt", Options{TTL: 5 * time.Second})
	b := s.open(t, "rt", Options{NoLease: true})
	ctx := ctxT(t, 20*time.Second)

	recs := []registry.Record{
		rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2"),
		rec("198.51.100.3", "02:42:c6:33:64:03", "192.0.2.3"),
		rec("2001:db8::5", "02:42:00:00:00:05", "2001:db8:1::1"),
	}
	for _, r := range recs {
		if err := a.Register(ctx, r); err != nil {
			t.Fatalf("register %v: %v", r, err)
		}
		if err := a.Register(ctx, r); err != nil {
			t.Fatalf("register %v again: %v", r, err)
		}
	}
	// The raw layout, read back through the other client.
	kv := getKV(t, b, "/rt/vni/42/arp/198.51.100.2")
	if len(kv.Kvs) != 1 || string(kv.Kvs[0].Value) != "02:42:c6:33:64:02" || etcdv3.LeaseID(kv.Kvs[0].Lease) != etcdv3.LeaseID(a.Stats().LeaseID) {
		t.Fatalf("arp key: %+v, want MAC under lease %x", kv.Kvs, a.Stats().LeaseID)
	}
	kv = getKV(t, b, "/rt/vni/42/fdb/02:42:c6:33:64:02")
	if len(kv.Kvs) != 1 || string(kv.Kvs[0].Value) != "192.0.2.2" {
		t.Fatalf("fdb key: %+v", kv.Kvs)
	}

	for _, r := range recs {
		mac, err := b.LookupMAC(ctx, r.IP)
		if err != nil || mac != r.MAC {
			t.Errorf("LookupMAC(%s) = %s, %v; want %s", r.IP, mac, err, r.MAC)
		}
		vtep, err := b.LookupVTEP(ctx, r.MAC)
		if err != nil || vtep != r.VTEP {
			t.Errorf("LookupVTEP(%s) = %s, %v; want %s", r.MAC, vtep, err, r.VTEP)
		}
	}
	got, err := b.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(recs) { // recs is sorted by IP
		t.Fatalf("List = %v, want %v", got, recs)
	}

	// Unregister with a stale value leaves the record alone.
	stale := recs[0]
	stale.MAC = mustMAC("02:42:00:00:00:99")
	if err := b.Unregister(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if mac, err := b.LookupMAC(ctx, recs[0].IP); err != nil || mac != recs[0].MAC {
		t.Fatalf("after unregistering a stale record: %s, %v", mac, err)
	}
	for _, r := range recs {
		if err := a.Unregister(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := a.Unregister(ctx, r); err != nil {
			t.Fatalf("unregister twice: %v", err)
		}
		if _, err := b.LookupMAC(ctx, r.IP); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("LookupMAC(%s) after unregister: %v, want ErrNotFound", r.IP, err)
		}
		if _, err := b.LookupVTEP(ctx, r.MAC); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("LookupVTEP(%s) after unregister: %v, want ErrNotFound", r.MAC, err)
		}
	}
	if len(a.Owned()) != 0 {
		t.Errorf("Owned after unregistering all: %v", a.Owned())
	}
	// Another prefix and another VNI are other overlays.
	if err := a.Register(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		prefix string
		vni    uint32
	}{{"other", 42}, {"rt", 7}} {
		r := s.open(t, o.prefix, Options{VNI: o.vni, NoLease: true})
		if _, err := r.LookupMAC(ctx, recs[0].IP); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("prefix %s vni %d sees the record: %v", o.prefix, o.vni, err)
		}
	}
}

func TestRegistryConflict(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "c", Options{})
	b := s.open(t, "c", Options{})
	ctx := ctxT(t, 20*time.Second)

	tests := []struct {
		name        string
		first, then registry.Record
		wantErr     bool
	}{
		{"same values", rec("198.51.100.2", "02:42:00:00:00:02", "192.0.2.2"), rec("198.51.100.2", "02:42:00:00:00:02", "192.0.2.2"), false},
		{"IP taken by another MAC", rec("198.51.100.3", "02:42:00:00:00:03", "192.0.2.2"), rec("198.51.100.3", "02:42:00:00:00:33", "192.0.2.3"), true},
		{"MAC at another VTEP", rec("198.51.100.4", "02:42:00:00:00:04", "192.0.2.2"), rec("198.51.100.5", "02:42:00:00:00:04", "192.0.2.3"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := a.Register(ctx, tt.first); err != nil {
				t.Fatal(err)
			}
			err := b.Register(ctx, tt.then)
			if tt.wantErr != errors.Is(err, registry.ErrConflict) || (!tt.wantErr && err != nil) {
				t.Fatalf("second register: %v, want conflict=%v", err, tt.wantErr)
			}
			if !tt.wantErr {
				return
			}
			// Nothing of the refused record was written.
			if mac, err := a.LookupMAC(ctx, tt.first.IP); err != nil || mac != tt.first.MAC {
				t.Errorf("first record changed: %s, %v", mac, err)
			}
			if tt.then.IP != tt.first.IP {
				if _, err := a.LookupMAC(ctx, tt.then.IP); !errors.Is(err, registry.ErrNotFound) {
					t.Errorf("refused record's IP was written: %v", err)
				}
			}
			if tt.then.MAC != tt.first.MAC {
				if _, err := a.LookupVTEP(ctx, tt.then.MAC); !errors.Is(err, registry.ErrNotFound) {
					t.Errorf("refused record's MAC was written: %v", err)
				}
			}
		})
	}
}

// Two nodes attach the same IP with different MACs at the same moment:
// exactly one wins, the other gets ErrConflict.
func TestRegistryConcurrentConflict(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "cc", Options{})
	b := s.open(t, "cc", Options{})
	ctx := ctxT(t, 30*time.Second)

	for i := range 30 {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + i)})
		ra := registry.Record{IP: ip, MAC: ethaddr.MAC{2, 0x42, 0, 0, 0xa, byte(i)}, VTEP: netip.MustParseAddr("192.0.2.2")}
		rb := registry.Record{IP: ip, MAC: ethaddr.MAC{2, 0x42, 0, 0, 0xb, byte(i)}, VTEP: netip.MustParseAddr("192.0.2.3")}
		var (
			wg         sync.WaitGroup
			start      = make(chan struct{})
			errA, errB error
		)
		wg.Go(func() { <-start; errA = a.Register(ctx, ra) })
		wg.Go(func() { <-start; errB = b.Register(ctx, rb) })
		close(start)
		wg.Wait()
		var winner registry.Record
		switch {
		case errA == nil && errors.Is(errB, registry.ErrConflict):
			winner = ra
		case errB == nil && errors.Is(errA, registry.ErrConflict):
			winner = rb
		default:
			t.Fatalf("%s: a: %v, b: %v; want exactly one ErrConflict", ip, errA, errB)
		}
		mac, err := a.LookupMAC(ctx, ip)
		if err != nil || mac != winner.MAC {
			t.Fatalf("%s: registered MAC %s, %v; want the winner's %s", ip, mac, err, winner.MAC)
		}
		loser := ra
		if winner == ra {
			loser = rb
		}
		if _, err := a.LookupVTEP(ctx, loser.MAC); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("%s: loser's MAC %s was written: %v", ip, loser.MAC, err)
		}
	}
}

// A registry without a lease (a one-shot client) writes lease-less records;
// the node's daemon registering the same values takes them over.
func TestRegistryTakeOver(t *testing.T) {
	s := startEtcd(t)
	cli := s.open(t, "to", Options{NoLease: true})
	daemon := s.open(t, "to", Options{TTL: 3 * time.Second})
	ctx := ctxT(t, 10*time.Second)
	r := rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.2")
	if err := cli.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/to/vni/42/arp/198.51.100.2", "/to/vni/42/fdb/02:42:c6:33:64:02"} {
		if kv := getKV(t, cli, k); len(kv.Kvs) != 1 || kv.Kvs[0].Lease != 0 {
			t.Fatalf("%s by a lease-less client: %+v", k, kv.Kvs)
		}
	}
	if err := daemon.Register(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"/to/vni/42/arp/198.51.100.2", "/to/vni/42/fdb/02:42:c6:33:64:02"} {
		if kv := getKV(t, cli, k); len(kv.Kvs) != 1 || kv.Kvs[0].Lease != daemon.Stats().LeaseID {
			t.Fatalf("%s after take-over: %+v, want lease %x", k, kv.Kvs, daemon.Stats().LeaseID)
		}
	}
}

func TestNetworkAndNodes(t *testing.T) {
	s := startEtcd(t)
	ctx := ctxT(t, 10*time.Second)
	n1 := s.open(t, "nw", Options{NodeVTEP: netip.MustParseAddr("192.0.2.2"), Hostname: "n1"})
	n2 := s.open(t, "nw", Options{NodeVTEP: netip.MustParseAddr("192.0.2.3"), Hostname: "n2", TTL: 2 * time.Second})

	if _, err := n1.Network(ctx); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("Network before publishing: %v", err)
	}
	net := registry.Network{VNI: 42, Port: 4789, MTU: 1450, Gateway: netip.MustParsePrefix("198.51.100.1/24")}
	if err := n1.PublishNetwork(ctx, net); err != nil {
		t.Fatal(err)
	}
	if err := n2.PublishNetwork(ctx, net); err != nil {
		t.Fatalf("same network again: %v", err)
	}
	other := net
	other.MTU = 1400
	err := n2.PublishNetwork(ctx, other)
	if !errors.Is(err, registry.ErrConflict) {
		t.Fatalf("different MTU: %v, want ErrConflict", err)
	}
	t.Logf("conflict: %v", err)
	if !strings.Contains(err.Error(), "store MTU: want 1400, have 1450") {
		t.Errorf("conflict does not name the MTU: %v", err)
	}
	vni := net
	vni.VNI = 43
	if err := n2.PublishNetwork(ctx, vni); !errors.Is(err, registry.ErrConflict) || !strings.Contains(err.Error(), "store VNI: want 43, have 42") {
		t.Errorf("network of VNI 43 in the registry of VNI 42: %v", err)
	}
	if got, err := n2.Network(ctx); err != nil || got != net {
		t.Fatalf("Network = %+v, %v; want %+v", got, err, net)
	}

	nodes, err := n1.Nodes(ctx)
	if err != nil || len(nodes) != 2 || nodes[0].VTEP != netip.MustParseAddr("192.0.2.2") || nodes[1].Hostname != "n2" {
		t.Fatalf("Nodes = %+v, %v", nodes, err)
	}
	if err := n2.Revoke(ctx); err != nil {
		t.Fatal(err)
	}
	nodes, err = n1.Nodes(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Hostname != "n1" {
		t.Fatalf("Nodes after n2 revoked its lease = %+v, %v", nodes, err)
	}
	// A revoked registry reads on but registers nothing more.
	if err := n2.Register(ctx, rec("198.51.100.2", "02:42:c6:33:64:02", "192.0.2.3")); err == nil {
		t.Fatal("register after Revoke succeeded")
	}
	if _, err := n2.Network(ctx); err != nil {
		t.Fatalf("read after Revoke: %v", err)
	}
	waitFor(t, 10*time.Second, "keeper stops", func() bool { return !n2.Stats().LeaseUp })
	if nodes, err := n1.Nodes(ctx); err != nil || len(nodes) != 1 {
		t.Fatalf("Nodes once n2's keeper stopped = %+v, %v", nodes, err)
	}
}
