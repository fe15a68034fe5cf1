package rtnl_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// neighLinkBody is a raw RTM_NEWLINK body creating an up device of kind,
// enslaved to master when non-zero, with info data written by data (if any).
// It keeps the neighbour tests independent of the link codec.
func neighLinkBody(name, kind string, master int32, data func(ae *rtnl.AttributeEncoder)) []byte {
	body := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(body[8:], unix.IFF_UP)  // ifi_flags
	binary.NativeEndian.PutUint32(body[12:], unix.IFF_UP) // ifi_change
	ae := rtnl.NewAttributeEncoder(body)
	ae.String(unix.IFLA_IFNAME, name)
	if master != 0 {
		ae.Uint32(unix.IFLA_MASTER, uint32(master))
	}
	li := ae.Begin(unix.IFLA_LINKINFO)
	ae.String(unix.IFLA_INFO_KIND, kind)
	if data != nil {
		d := ae.Begin(unix.IFLA_INFO_DATA)
		data(&ae)
		ae.End(d)
	}
	ae.End(li)
	return ae.Bytes()
}

// neighVXLANData is `vxlan id 42 dstport 4789 proxy l2miss l3miss nolearning`.
func neighVXLANData(ae *rtnl.AttributeEncoder) {
	ae.Uint32(1, 42)      // IFLA_VXLAN_ID, host order
	ae.Uint16BE(15, 4789) // IFLA_VXLAN_PORT, big-endian
	ae.Uint8(11, 1)       // IFLA_VXLAN_PROXY
	ae.Uint8(13, 1)       // IFLA_VXLAN_L2MISS
	ae.Uint8(14, 1)       // IFLA_VXLAN_L3MISS
	ae.Uint8(7, 0)        // IFLA_VXLAN_LEARNING
}

// neighLab is a throwaway netns holding br0 and vxlan1 (enslaved to br0).
type neighLab struct {
	ns        *rtnl.NetNS
	name      string
	c         *rtnl.Conn
	br, vxlan int32
}

func newNeighLab(t *testing.T, tag string) *neighLab {
	t.Helper()
	ns, name := nstest.NetNS(t, tag)
	l := &neighLab{ns: ns, name: name, c: nstest.Dial(t, ns)}
	if err := l.c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, neighLinkBody("br0", "bridge", 0, nil)); err != nil {
		t.Fatalf("create br0: %v", err)
	}
	l.br = neighIfindex(t, name, "br0")
	if err := l.c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, neighLinkBody("vxlan1", "vxlan", l.br, neighVXLANData)); err != nil {
		t.Fatalf("create vxlan1: %v", err)
	}
	l.vxlan = neighIfindex(t, name, "vxlan1")
	return l
}

func neighIfindex(t *testing.T, netns, dev string) int32 {
	t.Helper()
	var links []struct {
		Ifindex int32 `json:"ifindex"`
	}
	out := nstest.Run(t, netns, "ip", "-j", "link", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		t.Fatalf("ip link show %s: %v: %s", dev, err, out)
	}
	return links[0].Ifindex
}

// ipNeigh is one entry of `ip -j neigh show`.
type ipNeigh struct {
	Dst    string   `json:"dst"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

func neighIPShow(t *testing.T, netns, dev string) []ipNeigh {
	t.Helper()
	var out []ipNeigh
	s := nstest.Run(t, netns, "ip", "-j", "neigh", "show", "dev", dev)
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("ip -j neigh show: %v: %s", err, s)
	}
	return out
}

// bridgeFDB is one entry of `bridge -j fdb show`.
type bridgeFDB struct {
	MAC   string   `json:"mac"`
	Dst   string   `json:"dst"`
	Port  int      `json:"port"`
	VNI   int      `json:"vni"`
	Via   string   `json:"viaIf"`
	Flags []string `json:"flags"`
	State string   `json:"state"`
}

func neighBridgeShow(t *testing.T, netns, dev string) map[string]bridgeFDB {
	t.Helper()
	var out []bridgeFDB
	s := nstest.Run(t, netns, "bridge", "-j", "fdb", "show", "dev", dev)
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("bridge -j fdb show: %v: %.300s", err, s)
	}
	m := make(map[string]bridgeFDB, len(out))
	for _, e := range out {
		if slices.Contains(e.Flags, "self") {
			m[e.MAC] = e
		}
	}
	return m
}

func TestNeighARPEntry(t *testing.T) {
	l := newNeighLab(t, "na")
	ip := netip.MustParseAddr("198.51.100.3")
	mac := neighMustMAC(t, "02:42:c6:33:64:03")
	if err := l.c.NeighAdd(rtnl.ARPEntry{Ifindex: l.vxlan, IP: ip, MAC: mac}.Message()); err != nil {
		t.Fatalf("NeighAdd: %v", err)
	}
	got := neighIPShow(t, l.name, "vxlan1")
	if len(got) != 1 || got[0].Dst != ip.String() || got[0].LLAddr != mac.String() || !slices.Equal(got[0].State, []string{"PERMANENT"}) {
		t.Fatalf("ip neigh show dev vxlan1 = %+v, want %v lladdr %v PERMANENT", got, ip, mac)
	}

	// A duplicate fails with EEXIST, as an *OpError naming the request.
	err := l.c.NeighAdd(rtnl.ARPEntry{Ifindex: l.vxlan, IP: ip, MAC: mac}.Message())
	var oe *rtnl.OpError
	if !errors.Is(err, unix.EEXIST) || !errors.As(err, &oe) || oe.Op != "RTM_NEWNEIGH" {
		t.Fatalf("duplicate NeighAdd: got %v, want an RTM_NEWNEIGH OpError with EEXIST", err)
	}
	if oe.Message != "" && !strings.Contains(err.Error(), oe.Message) {
		t.Fatalf("error text %q lacks the kernel's message %q", err, oe.Message)
	}
	// An entry without NDA_DST makes the kernel explain itself.
	err = l.c.NeighAdd(&rtnl.NeighMessage{Family: unix.AF_INET, Ifindex: l.vxlan, State: rtnl.NeighPermanent, LLAddr: mac.Bytes()})
	if !errors.Is(err, unix.EINVAL) || !errors.As(err, &oe) || oe.Message == "" || !strings.Contains(err.Error(), oe.Message) {
		t.Fatalf("NeighAdd without a destination: got %v, want EINVAL with an extended-ACK message", err)
	}
	t.Logf("kernel said: %v", err)

	// Replace changes the lladdr of the existing entry.
	mac2 := neighMustMAC(t, "02:42:c6:33:64:13")
	if err := l.c.NeighReplace(rtnl.ARPEntry{Ifindex: l.vxlan, IP: ip, MAC: mac2}.Message()); err != nil {
		t.Fatalf("NeighReplace: %v", err)
	}
	if got := neighIPShow(t, l.name, "vxlan1"); len(got) != 1 || got[0].LLAddr != mac2.String() {
		t.Fatalf("after replace: %+v, want lladdr %v", got, mac2)
	}

	// The dump decodes it, and the ifindex filter holds under strict checking.
	list, err := l.c.NeighList(rtnl.NeighFilter{Family: unix.AF_INET, Ifindex: l.vxlan})
	if err != nil {
		t.Fatalf("NeighList: %v", err)
	}
	if len(list) != 1 || list[0].Dst != ip || list[0].Ifindex != l.vxlan || list[0].State != rtnl.NeighPermanent {
		t.Fatalf("NeighList = %v, want the one entry", list)
	}
	if m, ok := list[0].MAC(); !ok || m != mac2 {
		t.Fatalf("NeighList lladdr = %v, want %v", list[0].LLAddr, mac2)
	}
	// br0 may hold multicast entries of its own (IGMP), but not ours.
	if list, err := l.c.NeighList(rtnl.NeighFilter{Family: unix.AF_INET, Ifindex: l.br}); err != nil ||
		slices.ContainsFunc(list, func(m rtnl.NeighMessage) bool { return m.Ifindex != l.br || m.Dst == ip }) {
		t.Fatalf("NeighList on br0 = %v, %v; want only br0's own entries", list, err)
	}

	if err := l.c.NeighDelete(rtnl.ARPEntry{Ifindex: l.vxlan, IP: ip, MAC: mac2}.Message()); err != nil {
		t.Fatalf("NeighDelete: %v", err)
	}
	if got := neighIPShow(t, l.name, "vxlan1"); len(got) != 0 {
		t.Fatalf("after delete: %+v", got)
	}
	if err := l.c.NeighDelete(rtnl.ARPEntry{Ifindex: l.vxlan, IP: ip, MAC: mac2}.Message()); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("second delete: got %v, want ENOENT", err)
	}
}

func TestNeighFDBEntry(t *testing.T) {
	l := newNeighLab(t, "nf")
	macA := neighMustMAC(t, "02:42:c6:33:64:03")
	macB := neighMustMAC(t, "02:42:c6:33:64:04")
	a := rtnl.FDBEntry{Ifindex: l.vxlan, MAC: macA, Dst: netip.MustParseAddr("192.0.2.3"), VNI: 42, Port: 4789}
	b := rtnl.FDBEntry{Ifindex: l.vxlan, MAC: macB, Dst: netip.MustParseAddr("192.0.2.4"), VNI: 4242, Port: 4790, Via: 1}
	for _, e := range []rtnl.FDBEntry{a, b} {
		if err := l.c.NeighReplace(e.Message()); err != nil {
			t.Fatalf("NeighReplace %v: %v", e.MAC, err)
		}
	}
	fdb := neighBridgeShow(t, l.name, "vxlan1")
	// The kernel leaves out VNI and port equal to the device's own (42, 4789).
	wantA := bridgeFDB{MAC: macA.String(), Dst: "192.0.2.3", Flags: []string{"self"}, State: "permanent"}
	wantB := bridgeFDB{MAC: macB.String(), Dst: "192.0.2.4", VNI: 4242, Port: 4790, Via: "lo", Flags: []string{"self"}, State: "permanent"}
	for _, w := range []bridgeFDB{wantA, wantB} {
		if g, ok := fdb[w.MAC]; !ok || fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("bridge fdb show: %+v, want %+v", g, w)
		}
	}
	if len(fdb) != 2 {
		t.Errorf("bridge fdb show has %d self entries, want 2: %v", len(fdb), fdb)
	}

	err := l.c.NeighAdd(a.Message())
	var oe *rtnl.OpError
	if !errors.Is(err, unix.EEXIST) || !errors.As(err, &oe) || oe.Op != "RTM_NEWNEIGH" {
		t.Fatalf("duplicate FDB NeighAdd: got %v, want EEXIST", err)
	}
	if oe.Message != "" && !strings.Contains(err.Error(), oe.Message) {
		t.Fatalf("error text %q lacks the kernel's message %q", err, oe.Message)
	}

	list, err := l.c.NeighList(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.vxlan})
	if err != nil {
		t.Fatalf("NeighList: %v", err)
	}
	var got []string
	for _, m := range list {
		if m.Flags&rtnl.NeighFlagSelf == 0 {
			continue // the bridge's own entry for vxlan1's address
		}
		if m.Ifindex != l.vxlan || m.Family != unix.AF_BRIDGE {
			t.Errorf("entry of another device or family: %v", &m)
		}
		got = append(got, m.String())
	}
	slices.Sort(got)
	want := []string{
		fmt.Sprintf("%v dev %d dst 192.0.2.3 PERMANENT self", macA, l.vxlan),
		fmt.Sprintf("%v dev %d dst 192.0.2.4 port 4790 vni 4242 via 1 PERMANENT self", macB, l.vxlan),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("NeighList decoded\n%q\nwant\n%q", got, want)
	}
	if list, err := l.c.NeighList(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.br}); err != nil || slices.ContainsFunc(list, func(m rtnl.NeighMessage) bool { return m.Ifindex != l.br }) {
		t.Fatalf("NeighList filtered on br0: %v, %v", list, err)
	}

	// Without strict checking the kernel ignores the ifindex of an AF_BRIDGE
	// dump; the entries of other devices are dropped on receipt.
	loose, err := rtnl.Dial(&rtnl.Config{NetNS: l.ns, DisableStrictCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer loose.Close()
	list2, err := loose.NeighList(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.vxlan})
	if err != nil || len(list2) != len(list) || slices.ContainsFunc(list2, func(m rtnl.NeighMessage) bool { return m.Ifindex != l.vxlan }) {
		t.Fatalf("non-strict NeighList: %d entries (%v), want the %d of vxlan1", len(list2), err, len(list))
	}

	// The master filter selects br0 and its ports, not br1, another bridge
	// with multicast entries of its own.
	if err := l.c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, neighLinkBody("br1", "bridge", 0, nil)); err != nil {
		t.Fatalf("create br1: %v", err)
	}
	other := neighIfindex(t, l.name, "br1")
	onOther := func(m rtnl.NeighMessage) bool { return m.Ifindex == other }
	if all, err := l.c.NeighList(rtnl.NeighFilter{Family: unix.AF_BRIDGE}); err != nil || !slices.ContainsFunc(all, onOther) {
		t.Fatalf("unfiltered NeighList: %v, %v; want entries of br1", all, err)
	}
	list, err = l.c.NeighList(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Master: l.br})
	if err != nil || slices.ContainsFunc(list, onOther) || !slices.ContainsFunc(list, func(m rtnl.NeighMessage) bool {
		return m.Ifindex == l.vxlan && m.Master == uint32(l.br)
	}) {
		t.Fatalf("NeighList master br0: %v, %v; want vxlan1's entry in br0 and nothing of br1", list, err)
	}

	// NeighDump stops at the callback's error and returns it.
	stop := errors.New("stop")
	calls := 0
	if err := l.c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.vxlan}, func(*rtnl.NeighMessage) error {
		calls++
		return stop
	}); err != stop || calls != 1 {
		t.Fatalf("NeighDump: %v after %d calls, want stop after 1", err, calls)
	}

	if err := l.c.NeighDelete(b.Message()); err != nil {
		t.Fatalf("NeighDelete: %v", err)
	}
	if fdb := neighBridgeShow(t, l.name, "vxlan1"); len(fdb) != 1 || fdb[macA.String()].Dst != "192.0.2.3" {
		t.Fatalf("after delete: %v", fdb)
	}
}

func TestNeighBatchFDB(t *testing.T) {
	l := newNeighLab(t, "nb")
	const n = 10000
	entry := func(i int) rtnl.FDBEntry {
		return rtnl.FDBEntry{Ifindex: l.vxlan, MAC: ethaddr.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)},
			Dst: netip.AddrFrom4([4]byte{192, 0, 2, byte(1 + i%250)}), VNI: 42}
	}
	var b rtnl.Batch
	for i := range n {
		if err := b.NeighReplace(entry(i).Message()); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.c.ExecuteBatch(&b); err != nil {
		t.Fatalf("ExecuteBatch of %d: %v", n, err)
	}
	fdb := neighBridgeShow(t, l.name, "vxlan1")
	if len(fdb) != n {
		t.Fatalf("bridge fdb show: %d self entries, want %d", len(fdb), n)
	}
	for i := range n {
		e := entry(i)
		if g := fdb[ethaddr.MAC(e.MAC).String()]; g.Dst != e.Dst.String() || g.State != "permanent" {
			t.Fatalf("entry %d: %+v, want dst %v permanent", i, g, e.Dst)
		}
	}
	count := 0
	if err := l.c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.vxlan}, func(m *rtnl.NeighMessage) error {
		mac, ok := m.MAC()
		if m.Flags&rtnl.NeighFlagSelf != 0 && ok && mac[0] == 2 && mac[1] == 0 {
			i := int(mac[4])<<8 | int(mac[5])
			if m.Dst != entry(i).Dst {
				return fmt.Errorf("entry %d: dst %v, want %v", i, m.Dst, entry(i).Dst)
			}
			count++
		}
		return nil
	}); err != nil {
		t.Fatalf("NeighDump: %v", err)
	}
	if count != n {
		t.Fatalf("NeighDump saw %d entries, want %d", count, n)
	}
	// Streaming does not allocate per entry (Conn's recvmsg still allocates
	// a sockaddr per datagram of ~200 entries).
	allocs := testing.AllocsPerRun(2, func() {
		if err := l.c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.vxlan}, func(*rtnl.NeighMessage) error { return nil }); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("NeighDump of %d entries: %v allocations", n, allocs)
	if allocs > n/100 {
		t.Fatalf("NeighDump of %d entries made %v allocations, want well under one per entry", n, allocs)
	}
	list, err := l.c.NeighList(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.vxlan})
	if err != nil || len(list) < n {
		t.Fatalf("NeighList: %d entries, %v", len(list), err)
	}

	// One entry with an IPv6 VTEP on an IPv4 vxlan fails alone.
	b.Reset()
	const bad = 37
	for i := range 100 {
		e := entry(n + i)
		if i == bad {
			e.Dst = netip.MustParseAddr("2001:db8::1")
		}
		if err := b.NeighAdd(e.Message()); err != nil {
			t.Fatal(err)
		}
	}
	err = l.c.ExecuteBatch(&b)
	var be *rtnl.BatchError
	if !errors.As(err, &be) || be.Total != 100 || len(be.Failures) != 1 || be.Failures[0].Index != bad || !errors.Is(err, unix.EAFNOSUPPORT) {
		t.Fatalf("batch with a bad entry: got %v, want one EAFNOSUPPORT failure at #%d", err, bad)
	}
	fdb = neighBridgeShow(t, l.name, "vxlan1")
	if len(fdb) != n+99 {
		t.Fatalf("after the second batch: %d self entries, want %d", len(fdb), n+99)
	}
	if _, ok := fdb[ethaddr.MAC(entry(n+bad).MAC).String()]; ok {
		t.Fatalf("the bad entry was applied")
	}

	// Batched deletes.
	b.Reset()
	for i := range n {
		if err := b.NeighDelete(entry(i).Message()); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.c.ExecuteBatch(&b); err != nil {
		t.Fatalf("batched delete: %v", err)
	}
	if fdb := neighBridgeShow(t, l.name, "vxlan1"); len(fdb) != 99 {
		t.Fatalf("after batched delete: %d self entries, want 99", len(fdb))
	}
}

func TestNeighBatchARP(t *testing.T) {
	l := newNeighLab(t, "nr")
	const n = 200 // well under gc_thresh3 (1024)
	var b rtnl.Batch
	for i := range n {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		if i == 150 {
			ip = netip.AddrFrom4([4]byte{198, 51, 100, 3}) // duplicate of #3
		}
		if err := b.NeighAdd(rtnl.ARPEntry{Ifindex: l.vxlan,
			IP: ip, MAC: ethaddr.MAC{2, 0x42, 198, 51, 100, byte(i)}}.Message()); err != nil {
			t.Fatal(err)
		}
	}
	err := l.c.ExecuteBatch(&b)
	var be *rtnl.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 1 || be.Failures[0].Index != 150 || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("got %v, want one EEXIST failure at #150", err)
	}
	got := neighIPShow(t, l.name, "vxlan1")
	if len(got) != n-1 {
		t.Fatalf("ip neigh show: %d entries, want %d", len(got), n-1)
	}
	for _, e := range got {
		a := netip.MustParseAddr(e.Dst).As4()
		if want := (ethaddr.MAC{2, 0x42, 198, 51, 100, a[3]}).String(); e.LLAddr != want || !slices.Equal(e.State, []string{"PERMANENT"}) {
			t.Fatalf("entry %+v, want lladdr %s PERMANENT", e, want)
		}
	}
}

func TestNeighBatchAddDoesNotAllocate(t *testing.T) {
	m := rtnl.FDBEntry{Ifindex: 3, MAC: ethaddr.MAC{2, 0, 0, 0, 0, 1}, Dst: netip.MustParseAddr("192.0.2.1"), VNI: 42}.Message()
	var b rtnl.Batch
	fill := func() {
		b.Reset()
		for range 100 {
			if err := b.NeighReplace(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill() // grow the buffers once
	if n := testing.AllocsPerRun(10, fill); n != 0 {
		t.Fatalf("Batch.NeighReplace: %v allocs per 100 requests, want 0", n)
	}
	if b.Len() != 100 {
		t.Fatalf("Len = %d, want 100", b.Len())
	}
}

// TestNeighAppendFloodList: NeighAppend (Conn and Batch) adds remotes to
// the vxlan's all-zeros FDB entry, the flooding list of head-end
// replication, where NeighReplace would overwrite the one remote; the
// kernel lists every remote, and a MAC of one container is refused.
func TestNeighAppendFloodList(t *testing.T) {
	l := newNeighLab(t, "fa")
	flood := func(dst string) *rtnl.NeighMessage {
		return rtnl.FDBEntry{Ifindex: l.vxlan, Dst: netip.MustParseAddr(dst)}.Message()
	}
	if err := l.c.NeighAppend(flood("192.0.2.5")); err != nil {
		t.Fatalf("NeighAppend: %v", err)
	}
	var b rtnl.Batch
	for _, dst := range []string{"192.0.2.6", "192.0.2.7"} {
		if err := b.NeighAppend(flood(dst)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.c.ExecuteBatch(&b); err != nil {
		t.Fatalf("ExecuteBatch of appends: %v", err)
	}
	var out []bridgeFDB
	s := nstest.Run(t, l.name, "bridge", "-j", "fdb", "show", "dev", "vxlan1")
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatalf("bridge -j fdb show: %v: %.300s", err, s)
	}
	var dsts []string
	for _, e := range out {
		if e.MAC == "00:00:00:00:00:00" && slices.Contains(e.Flags, "self") {
			dsts = append(dsts, e.Dst)
		}
	}
	slices.Sort(dsts)
	if want := []string{"192.0.2.5", "192.0.2.6", "192.0.2.7"}; !slices.Equal(dsts, want) {
		t.Errorf("flooding list %v, want %v (bridge fdb show: %.500s)", dsts, want, s)
	}
	// Another MAC's entry is created by an append, but keeps its one remote.
	mac := neighMustMAC(t, "02:42:c6:33:64:03")
	for _, dst := range []string{"192.0.2.3", "192.0.2.4"} {
		if err := l.c.NeighAppend(rtnl.FDBEntry{Ifindex: l.vxlan, MAC: mac, Dst: netip.MustParseAddr(dst)}.Message()); err != nil {
			t.Fatalf("NeighAppend %v dst %s: %v", mac, dst, err)
		}
	}
	if g := neighBridgeShow(t, l.name, "vxlan1")[mac.String()]; g.Dst != "192.0.2.3" {
		t.Errorf("unicast entry after two appends: %+v, want its first remote 192.0.2.3 only", g)
	}
	n := 0
	if err := l.c.NeighDump(rtnl.NeighFilter{Family: unix.AF_BRIDGE, Ifindex: l.vxlan}, func(m *rtnl.NeighMessage) error {
		if got, ok := m.MAC(); ok && got == mac {
			n++
		}
		return nil
	}); err != nil || n != 1 {
		t.Errorf("dump: %d entries for %v (%v), want 1", n, mac, err)
	}
}
