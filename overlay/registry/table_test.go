package registry

import (
	"net/netip"
	"runtime"
	"slices"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// TestTable: keys of both families joined into records, MACs counted by
// the IPs naming them, VTEPs interned and their indexes reused, the fdb/
// key of a replaced MAC dropped once unnamed.
func TestTable(t *testing.T) {
	ip4, ip6 := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("2001:db8::1")
	m1, m2 := ethaddr.MAC{2, 0x42, 10, 1, 0, 1}, ethaddr.MAC{2, 0x42, 10, 1, 0, 2}
	v1, v2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:ff::2")
	tab := NewTable(0)
	tab.SetARP(ip4, m1)
	if _, ok := tab.Record(ip4); ok {
		t.Fatal("a record without an fdb/ key is complete")
	}
	tab.SetFDB(m1, v1)
	tab.SetARP(ip6, m1)
	for _, ip := range []netip.Addr{ip4, ip6} {
		if r, ok := tab.Record(ip); !ok || r != (Record{ip, m1, v1}) {
			t.Errorf("Record(%s) = %v, %v", ip, r, ok)
		}
	}
	if v, refs, ok := tab.VTEP(m1); !ok || v != v1 || refs != 2 {
		t.Errorf("VTEP(m1) = %v, %d, %v; want %v, 2 refs", v, refs, ok, v1)
	}
	tab.SetFDB(m1, v2) // the MAC moved
	if r, _ := tab.Record(ip6); r.VTEP != v2 || tab.vteps.Len() != 1 {
		t.Errorf("after a move: %v, %d VTEPs interned; want %v, 1", r, tab.vteps.Len(), v2)
	}
	old, had := tab.PutRecord(Record{ip4, m2, v1})
	if !had || old != (Record{ip4, m1, v2}) || tab.Refs(m1) != 1 || tab.Refs(m2) != 1 {
		t.Errorf("PutRecord replaced %v, %v; refs m1 %d m2 %d", old, had, tab.Refs(m1), tab.Refs(m2))
	}
	var got []Record
	for r := range tab.Records() {
		got = append(got, r)
	}
	slices.SortFunc(got, func(a, b Record) int { return a.IP.Compare(b.IP) })
	if want := []Record{{ip4, m2, v1}, {ip6, m1, v2}}; !slices.Equal(got, want) || tab.Len() != 2 {
		t.Errorf("Records = %v (Len %d), want %v", got, tab.Len(), want)
	}
	tab.DeleteRecord(Record{ip6, m1, v2})
	if _, _, ok := tab.VTEP(m1); ok || len(tab.macs) != 1 {
		t.Errorf("the fdb/ key of a MAC no IP names stayed: %d MACs", len(tab.macs))
	}
	tab.DeleteRecord(Record{ip4, m2, v1})
	if tab.Len() != 0 || len(tab.macs) != 0 || tab.vteps.Len() != 0 {
		t.Errorf("an emptied table holds %d IPs, %d MACs, %d VTEPs", tab.Len(), len(tab.macs), tab.vteps.Len())
	}
	if i := tab.vteps.Add(v1); i != 1 && i != 2 {
		t.Errorf("a freed VTEP index is not reused: %d", i)
	}
}

// BenchmarkTable100k: 100,000 IPv4 records on 100 VTEPs put in a table;
// B/record is its heap per record (a record held as netip.Addr and
// CompactAddr maps took 80 bytes in the etcd watcher, 60 more in the
// resolver's copy).
func BenchmarkTable100k(b *testing.B) {
	const n = 100_000
	var per float64
	for b.Loop() {
		before := heapInUse()
		tab := NewTable(n)
		for i := range n {
			a := netip.AddrFrom4([4]byte{10, byte(1 + i>>16), byte(i >> 8), byte(i)})
			ip := a.As4()
			mac := ethaddr.MAC{2, 0x43, ip[0], ip[1], ip[2], ip[3]}
			tab.SetARP(a, mac)
			tab.SetFDB(mac, netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i%100)}))
		}
		per += float64(heapInUse()-before) / n
		runtime.KeepAlive(tab)
	}
	b.ReportMetric(per/float64(b.N), "B/record")
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
