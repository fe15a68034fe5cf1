package etcdreg

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestOpener: through registry.Open, Options.VNI selects the overlay when
// the URL names none (the URL's vni wins), no Options.Lease writes records
// without a lease, Options.Lease holds them on one and advertises the
// node; a malformed URL wraps registry.ErrBadURL.
func TestOpener(t *testing.T) {
	s := startEtcd(t)
	ctx := ctxT(t, 20*time.Second)
	schemes := map[string]registry.Opener{"etcd": Opener}
	open := func(query string, o registry.Options) *Registry {
		t.Helper()
		o.Schemes = schemes
		r, err := registry.Open(ctx, s.URL("op", query), o)
		if err != nil {
			t.Fatalf("registry.Open(%s): %v", s.URL("op", query), err)
		}
		t.Cleanup(func() { r.Close() })
		return r.(*Registry)
	}
	if got := open("", registry.Options{VNI: 77}).Prefix(); got != "/op/vni/77/" {
		t.Errorf("Options.VNI 77: prefix %s", got)
	}
	if got := open("vni=7", registry.Options{VNI: 77}).Prefix(); got != "/op/vni/7/" {
		t.Errorf("vni=7 in the URL, Options.VNI 77: prefix %s, want the URL's", got)
	}
	if got := open("", registry.Options{}).Prefix(); got != "/op/vni/42/" {
		t.Errorf("no VNI: prefix %s, want the default", got)
	}

	rec := registry.Record{IP: netip.MustParseAddr("198.51.100.2"), MAC: ethaddr.MAC{2, 0x42, 0xc6, 0x33, 0x64, 2}, VTEP: netip.MustParseAddr("192.0.2.2")}
	oneShot := open("", registry.Options{})
	if err := oneShot.Register(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if st := oneShot.Stats(); st.LeaseID != 0 {
		t.Errorf("no Options.Lease: lease %x, want none", st.LeaseID)
	}
	keep := func(owned []registry.Record) []registry.Record { return owned }
	daemon := open("", registry.Options{Lease: &registry.Lease{VTEP: rec.VTEP, Keep: keep}})
	if err := daemon.Register(ctx, rec); err != nil {
		t.Fatal(err)
	}
	lease := daemon.Stats().LeaseID
	keys, err := s.Keys("/op/vni/42/")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"arp/198.51.100.2", "fdb/02:42:c6:33:64:02", "nodes/192.0.2.2"} {
		if kv, ok := keys["/op/vni/42/"+k]; !ok || kv.Lease != lease || lease == 0 {
			t.Errorf("%s: %+v, want it on the lease %x", k, kv, lease)
		}
	}

	if _, err := registry.Open(ctx, "etcd://h:1/p?vni=x", registry.Options{Schemes: schemes}); !errors.Is(err, registry.ErrBadURL) {
		t.Errorf("bad vni: %v, want ErrBadURL", err)
	}
}
