package etcdreg

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// TestRecordsAt: RecordsAt returns exactly the complete records of one VTEP,
// sorted, those List has at it, across pages (more keys than listPage),
// skipping keys that are no record and IPs whose MAC has no fdb/ key.
func TestRecordsAt(t *testing.T) {
	s := startEtcd(t)
	a := s.open(t, "at", Options{NoLease: true})
	ctx := ctxT(t, 60*time.Second)
	vtepA, vtepB := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")
	var ops []etcdv3.Op
	put := func(k, v string) {
		ops = append(ops, etcdv3.OpPut(a.Prefix()+k, v))
		if len(ops) == 64 {
			if _, err := a.Client().Txn(ctx).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	const n = listPage/2 + 500 // two pages of fdb/ and arp/ keys together
	for i := range n {
		ip := netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})
		mac := fmt.Sprintf("02:44:0a:09:%02x:%02x", byte(i>>8), byte(i))
		vtep := vtepA
		if i%1000 == 7 {
			vtep = vtepB
		}
		put("arp/"+ip.String(), mac)
		put("fdb/"+mac, vtep.String())
	}
	put("arp/10.9.200.1", "02:44:0a:09:c8:01")  // no fdb/ key
	put("arp/2001:DB8::1", "02:44:0a:09:00:07") // not canonical, names a MAC at B
	put("arp/junk", "02:44:0a:09:00:07")
	put("fdb/02:44:0a:09:c8:02", "junk")
	put("fdb/02:44:0A:09:C8:03", vtepB.String()) // not canonical
	if len(ops) > 0 {
		if _, err := a.Client().Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	all, err := a.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, vtep := range []netip.Addr{vtepA, vtepB} {
		var want []registry.Record
		for _, r := range all {
			if r.VTEP == vtep {
				want = append(want, r)
			}
		}
		got, err := a.RecordsAt(ctx, vtep)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("RecordsAt(%s) = %d records, %v; want the %d List has at it", vtep, len(got), err, len(want))
		}
	}
	if got, err := a.RecordsAt(ctx, vtepB); len(got) != 3 {
		t.Errorf("RecordsAt(%s) = %v, %v; want 3 records", vtepB, got, err)
	}
	if got, err := a.RecordsAt(ctx, netip.MustParseAddr("192.0.2.99")); len(got) != 0 || err != nil {
		t.Errorf("RecordsAt of a VTEP with no record = %v, %v; want none", got, err)
	}
}
