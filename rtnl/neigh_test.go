package rtnl_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// neighAttr builds one attribute by hand, padded, for wire-level checks.
func neighAttr(typ uint16, payload ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, uint16(4+len(payload)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// neighHeader builds an ndmsg by hand.
func neighHeader(family uint8, ifindex int32, state uint16, flags, typ uint8) []byte {
	b := []byte{family, 0, 0, 0}
	b = binary.NativeEndian.AppendUint32(b, uint32(ifindex))
	b = binary.NativeEndian.AppendUint16(b, state)
	return append(b, flags, typ)
}

func neighU32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func neighMustMAC(t testing.TB, s string) ethaddr.MAC {
	t.Helper()
	m, err := ethaddr.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNeighWireBytes(t *testing.T) {
	mac := neighMustMAC(t, "02:42:c6:33:64:03")
	tests := []struct {
		name string
		msg  *rtnl.NeighMessage
		wire []byte
	}{{
		name: "fdb dst vni port via src_vni",
		msg: func() *rtnl.NeighMessage {
			m := rtnl.FDBEntry{Ifindex: 5, MAC: mac, Dst: netip.MustParseAddr("192.0.2.3"),
				VNI: 42, Port: 4790, Via: 3, SrcVNI: 7}.Message()
			return m
		}(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyBridge, 5, 0x80, 0x02, 0),
			neighAttr(1, 192, 0, 2, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
			neighAttr(6, 0x12, 0xb6), // NDA_PORT 4790, big-endian
			neighAttr(7, neighU32(42)...),
			neighAttr(8, neighU32(3)...),
			neighAttr(11, neighU32(7)...),
		}, nil),
	}, {
		name: "fdb explicit zero vni and port",
		msg: rtnl.FDBEntry{Ifindex: 5, MAC: mac, Dst: netip.MustParseAddr("192.0.2.3"),
			HasVNI: true, HasPort: true, State: rtnl.NeighReachable}.Message(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyBridge, 5, 0x02, 0x02, 0),
			neighAttr(1, 192, 0, 2, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
			neighAttr(6, 0, 0),
			neighAttr(7, 0, 0, 0, 0),
		}, nil),
	}, {
		name: "arp entry",
		msg:  rtnl.ARPEntry{Ifindex: 9, IP: netip.MustParseAddr("198.51.100.3"), MAC: mac}.Message(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyInet, 9, 0x80, 0, 0),
			neighAttr(1, 198, 51, 100, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
		}, nil),
	}, {
		name: "nd entry from a v4-mapped address is ARP",
		msg:  rtnl.ARPEntry{Ifindex: 9, IP: netip.MustParseAddr("::ffff:198.51.100.3"), MAC: mac}.Message(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyInet, 9, 0x80, 0, 0),
			neighAttr(1, 198, 51, 100, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
		}, nil),
	}, {
		name: "arp entry with flags and protocol",
		msg:  entryARP.Message(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyInet, 9, 0x80, 0x10, 0),
			neighAttr(1, 198, 51, 100, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
			neighAttr(12, 214),
		}, nil),
	}, {
		name: "reachable nd entry, zone dropped",
		msg: rtnl.ARPEntry{Ifindex: 9, IP: netip.MustParseAddr("fe80::3%br0"), MAC: mac,
			State: rtnl.NeighReachable}.Message(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyInet6, 9, 0x02, 0, 0),
			neighAttr(1, 0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
		}, nil),
	}, {
		name: "extern_learn fdb entry",
		msg:  entryFDB.Message(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyBridge, 5, 0x80, 0x12, 0),
			neighAttr(1, 192, 0, 2, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
			neighAttr(6, 0x12, 0xb5),
			neighAttr(7, neighU32(42)...),
		}, nil),
	}, {
		name: "nd entry",
		msg:  rtnl.ARPEntry{Ifindex: 9, IP: netip.MustParseAddr("2001:db8::3"), MAC: mac}.Message(),
		wire: bytes.Join([][]byte{
			neighHeader(rtnl.FamilyInet6, 9, 0x80, 0, 0),
			neighAttr(1, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3),
			neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x03),
		}, nil),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.wire) {
				t.Fatalf("encoding:\n got % x\nwant % x", got, tt.wire)
			}
			var back rtnl.NeighMessage
			if err := back.UnmarshalBinary(tt.wire); err != nil {
				t.Fatal(err)
			}
			prefix := []byte{0xee, 0xee, 0xee, 0xee}
			again, err := back.AppendBinary(prefix)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again[:4], prefix) || !bytes.Equal(again[4:], tt.wire) {
				t.Fatalf("re-encoding of the decoded message:\n got % x\nwant ee ee ee ee % x", again, tt.wire)
			}
		})
	}
	// The byte orders, spelled out: NDA_PORT is big-endian on every
	// machine, NDA_VNI (like every header) in the host's order.
	b, _ := rtnl.FDBEntry{Ifindex: 1, MAC: mac, VNI: 42, Port: 4790}.Message().MarshalBinary()
	vni := []byte{0x2a, 0, 0, 0}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 { // big-endian host
		vni = []byte{0, 0, 0, 0x2a}
	}
	if !bytes.Contains(b, neighAttr(6, 0x12, 0xb6)) || !bytes.Contains(b, neighAttr(7, vni...)) {
		t.Fatalf("NDA_PORT 4790 must be 12 b6 and NDA_VNI 42 % x: % x", vni, b)
	}
}

func TestNeighRoundTrip(t *testing.T) {
	mac := rtnl.HardwareAddr{0x02, 0x42, 0xc6, 0x33, 0x64, 0x03}
	var zeroVNI rtnl.NeighAttrSet
	zeroVNI.Set(rtnl.NeighAttrVNI)
	tests := []struct {
		name    string
		in      rtnl.NeighMessage
		present []rtnl.NeighAttr
	}{
		{"arp", rtnl.NeighMessage{Family: rtnl.FamilyInet, Ifindex: 4, State: rtnl.NeighPermanent, Type: rtnl.RTN_UNICAST,
			Dst: netip.MustParseAddr("198.51.100.7"), LLAddr: mac},
			[]rtnl.NeighAttr{rtnl.NeighAttrDst, rtnl.NeighAttrLLAddr}},
		{"ipv6 router", rtnl.NeighMessage{Family: rtnl.FamilyInet6, Ifindex: 4, State: rtnl.NeighReachable, Flags: rtnl.NeighFlagRouter,
			Dst: netip.MustParseAddr("2001:db8::7"), LLAddr: mac, Probes: 2, Protocol: 4, FlagsExt: 1},
			[]rtnl.NeighAttr{rtnl.NeighAttrDst, rtnl.NeighAttrLLAddr, rtnl.NeighAttrProbes, rtnl.NeighAttrProtocol, rtnl.NeighAttrFlagsExt}},
		{"fdb full", rtnl.NeighMessage{Family: rtnl.FamilyBridge, Ifindex: 6, State: rtnl.NeighPermanent, Flags: rtnl.NeighFlagSelf | rtnl.NeighFlagExtLearned,
			Dst: netip.MustParseAddr("2001:db8::1:2"), LLAddr: mac, Port: 4789, VNI: 0xffffff, Via: 3, SrcVNI: 99, VLAN: 10, LinkNetnsID: -1},
			[]rtnl.NeighAttr{rtnl.NeighAttrDst, rtnl.NeighAttrLLAddr, rtnl.NeighAttrVLAN, rtnl.NeighAttrPort, rtnl.NeighAttrVNI,
				rtnl.NeighAttrIfindex, rtnl.NeighAttrLinkNetnsID, rtnl.NeighAttrSrcVNI}},
		{"fdb bridge master", rtnl.NeighMessage{Family: rtnl.FamilyBridge, Ifindex: 6, State: rtnl.NeighReachable, Flags: rtnl.NeighFlagMaster,
			LLAddr: mac, Master: 2, VLAN: 1},
			[]rtnl.NeighAttr{rtnl.NeighAttrLLAddr, rtnl.NeighAttrVLAN, rtnl.NeighAttrMaster}},
		{"fdb nexthop", rtnl.NeighMessage{Family: rtnl.FamilyBridge, Ifindex: 6, State: rtnl.NeighPermanent, Flags: rtnl.NeighFlagSelf,
			LLAddr: mac, NHID: 12},
			[]rtnl.NeighAttr{rtnl.NeighAttrLLAddr, rtnl.NeighAttrNHID}},
		{"explicit zero vni", rtnl.NeighMessage{Family: rtnl.FamilyBridge, Ifindex: 6, State: rtnl.NeighPermanent, LLAddr: mac, Present: zeroVNI},
			[]rtnl.NeighAttr{rtnl.NeighAttrLLAddr, rtnl.NeighAttrVNI}},
		{"empty lladdr of an addr_len 0 device", rtnl.NeighMessage{Family: rtnl.FamilyInet, Ifindex: 8, State: rtnl.NeighNoARP,
			Dst: netip.MustParseAddr("10.1.2.3"), LLAddr: rtnl.HardwareAddr{}, Present: 1 << rtnl.NeighAttrLLAddr},
			[]rtnl.NeighAttr{rtnl.NeighAttrDst, rtnl.NeighAttrLLAddr}},
		{"header only", rtnl.NeighMessage{Family: rtnl.FamilyInet, Ifindex: 1, State: rtnl.NeighFailed | rtnl.NeighNoARP}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.in.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var out rtnl.NeighMessage
			if err := out.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			var want rtnl.NeighAttrSet
			for _, a := range tt.present {
				want.Set(a)
			}
			if out.Present != want {
				t.Errorf("Present = %v, want %v", out.Present, want)
			}
			in := tt.in
			in.Present, out.Present = 0, 0
			if len(in.LLAddr) == 0 && len(out.LLAddr) == 0 {
				in.LLAddr, out.LLAddr = nil, nil
			}
			if !reflect.DeepEqual(in, out) {
				t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
			}
		})
	}
}

// neighMissL3 is a vxlan L3 miss as the kernel sends it.
func neighMissL3() []byte {
	return bytes.Join([][]byte{
		neighHeader(rtnl.FamilyInet, 7, 0x04, 0, 0),
		neighAttr(10, neighU32(0)...),
		neighAttr(1, 198, 51, 100, 9),
		neighAttr(7, neighU32(1<<24)...),
		neighAttr(3, bytes.Join([][]byte{neighU32(11), neighU32(22), neighU32(33), neighU32(4)}, nil)...),
	}, nil)
}

func TestNeighDecodeMiss(t *testing.T) {
	var m rtnl.NeighMessage
	if err := m.UnmarshalBinary(neighMissL3()); err != nil {
		t.Fatal(err)
	}
	want := rtnl.NeighMessage{Family: rtnl.FamilyInet, Ifindex: 7, State: rtnl.NeighStale,
		Dst: netip.MustParseAddr("198.51.100.9"), VNI: 1 << 24,
		CacheInfo: rtnl.NeighCacheInfo{Confirmed: 11, Used: 22, Updated: 33, RefCount: 4}}
	for _, a := range []rtnl.NeighAttr{rtnl.NeighAttrLinkNetnsID, rtnl.NeighAttrDst, rtnl.NeighAttrVNI, rtnl.NeighAttrCacheInfo} {
		want.Present.Set(a)
	}
	m.LLAddr = nil
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	if _, ok := m.MAC(); ok {
		t.Fatal("MAC() reported a MAC for a message without NDA_LLADDR")
	}
	// CacheInfo is never encoded.
	b, _ := m.MarshalBinary()
	var back rtnl.NeighMessage
	if err := back.UnmarshalBinary(b); err != nil || back.Present.Has(rtnl.NeighAttrCacheInfo) {
		t.Fatalf("re-encoded miss carries NDA_CACHEINFO (%v, %v)", back.Present, err)
	}

	// An L2 miss: NDA_LLADDR, decoded into the storage the message already has.
	l2 := bytes.Join([][]byte{
		neighHeader(rtnl.FamilyInet, 7, 0x04, 0, 0),
		neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x0a),
		neighAttr(7, neighU32(0)...),
		neighAttr(99, 1, 2, 3), // unknown: skipped
	}, nil)
	store := make(rtnl.HardwareAddr, 0, 16)
	m.LLAddr = store
	if err := m.UnmarshalBinary(l2); err != nil {
		t.Fatal(err)
	}
	mac, ok := m.MAC()
	if !ok || ethaddr.MAC(mac).String() != "02:42:c6:33:64:0a" || &m.LLAddr[0] != &store[:1][0] {
		t.Fatalf("LLAddr %v (ok %v) not decoded into the given storage", m.LLAddr, ok)
	}
	if !m.Present.Has(rtnl.NeighAttrVNI) || m.VNI != 0 || m.Dst.IsValid() || m.CacheInfo != (rtnl.NeighCacheInfo{}) {
		t.Fatalf("fields of the previous decode leaked or VNI 0 lost: %+v", m)
	}
}

func TestNeighDecodeErrors(t *testing.T) {
	hdr := neighHeader(rtnl.FamilyBridge, 3, 0x80, 2, 0)
	tests := []struct {
		name string
		b    []byte
		want string
	}{
		{"short header", hdr[:11], "ndmsg"},
		{"port of 4 bytes", append(hdr[:12:12], neighAttr(6, 0, 0, 0x12, 0xb6)...), "NDA_PORT"},
		{"vni of 2 bytes", append(hdr[:12:12], neighAttr(7, 42, 0)...), "NDA_VNI"},
		{"dst of 5 bytes", append(hdr[:12:12], neighAttr(1, 1, 2, 3, 4, 5)...), "NDA_DST"},
		{"cacheinfo of 12 bytes", append(hdr[:12:12], neighAttr(3, make([]byte, 12)...)...), "NDA_CACHEINFO"},
		{"protocol of 4 bytes", append(hdr[:12:12], neighAttr(12, neighU32(3)...)...), "NDA_PROTOCOL"},
		{"attribute longer than the message", catBytes(hdr[:12], rawAttr(1, 40, 1, 2, 3, 4)), "length 40"},
		{"trailing bytes", append(hdr[:12:12], 1, 0), "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m rtnl.NeighMessage
			err := m.UnmarshalBinary(tt.b)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "rtnl: ") {
				t.Fatalf("got %v, want an rtnl error containing %q", err, tt.want)
			}
		})
	}
	// Every prefix of a valid message decodes or fails, never panics.
	full := neighMissL3()
	for i := range full {
		var m rtnl.NeighMessage
		_ = m.UnmarshalBinary(full[:i])
	}
}

func TestNeighEncodeErrors(t *testing.T) {
	m := rtnl.NeighMessage{Family: rtnl.FamilyInet, LLAddr: make(rtnl.HardwareAddr, 33)}
	if _, err := m.MarshalBinary(); err == nil || !strings.Contains(err.Error(), "NDA_LLADDR") {
		t.Fatalf("33-byte lladdr: got %v", err)
	}
	m = rtnl.NeighMessage{Family: rtnl.FamilyInet}
	m.Present.Set(rtnl.NeighAttrDst)
	if _, err := m.MarshalBinary(); err == nil || !strings.Contains(err.Error(), "NDA_DST") {
		t.Fatalf("present but invalid Dst: got %v", err)
	}
}

func TestNeighStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{rtnl.NeighStale.String(), "STALE"},
		{rtnl.NeighNone.String(), "NONE"},
		{(rtnl.NeighReachable | rtnl.NeighNoARP).String(), "REACHABLE|NOARP"},
		{(rtnl.NeighPermanent | 0x300).String(), "PERMANENT|0x300"},
		{(rtnl.NeighFlagSelf | rtnl.NeighFlagExtLearned).String(), "self|extern_learn"},
		{rtnl.NeighFlags(0).String(), "none"},
		{rtnl.NeighAttrVNI.String(), "NDA_VNI"},
		{rtnl.NeighAttrNHID.String(), "NDA_NH_ID"},
		{rtnl.NeighAttr(40).String(), "NDA_40"},
		{rtnl.NeighAttrSet(1<<rtnl.NeighAttrDst | 1<<rtnl.NeighAttrPort).String(), "NDA_DST|NDA_PORT"},
		{rtnl.FDBEntry{Ifindex: 4, MAC: ethaddr.MAC{2, 0, 0, 0, 0, 1}, Dst: netip.MustParseAddr("192.0.2.3"), VNI: 42}.Message().String(),
			"02:00:00:00:00:01 dev 4 dst 192.0.2.3 vni 42 PERMANENT self"},
		{rtnl.ARPEntry{Ifindex: 4, IP: netip.MustParseAddr("198.51.100.3"), MAC: ethaddr.MAC{2, 0, 0, 0, 0, 1}}.Message().String(),
			"198.51.100.3 lladdr 02:00:00:00:00:01 dev 4 PERMANENT"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestNeighUnmarshalDoesNotAllocate(t *testing.T) {
	l2 := bytes.Join([][]byte{
		neighHeader(rtnl.FamilyInet6, 7, 0x04, 0, 0),
		neighAttr(1, make([]byte, 16)...),
		neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x0a),
		neighAttr(7, neighU32(42)...),
	}, nil)
	m := rtnl.NeighMessage{LLAddr: make(rtnl.HardwareAddr, 0, 6)}
	if n := testing.AllocsPerRun(100, func() {
		if err := m.UnmarshalBinary(l2); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("UnmarshalBinary: %v allocs per run, want 0", n)
	}
}

func TestNeighTableParamsCodec(t *testing.T) {
	p := rtnl.NeighTableParams{Ifindex: 5, AppProbes: new(uint32(3)), UcastProbes: new(uint32(0)),
		RetransTime: new(1500 * time.Millisecond), QueueLenBytes: new(uint32(65536))}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	parms := bytes.Join([][]byte{
		neighAttr(1, neighU32(5)...),
		neighAttr(9, neighU32(3)...),
		neighAttr(10, neighU32(0)...),
		neighAttr(16, neighU32(65536)...),
		neighAttr(5, binary.NativeEndian.AppendUint64(nil, 1500)...),
	}, nil)
	want := bytes.Join([][]byte{
		{rtnl.FamilyInet, 0, 0, 0},
		neighAttr(1, []byte("arp_cache\x00")...),
		neighAttr(6|0x8000, parms...),
	}, nil)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding:\n got % x\nwant % x", b, want)
	}
	var back rtnl.NeighTableParams
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	p.Family = rtnl.FamilyInet
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip: got %+v, want %+v", back, p)
	}
	if _, err := (&rtnl.NeighTableParams{Family: rtnl.FamilyBridge}).MarshalBinary(); err == nil {
		t.Fatal("AF_BRIDGE has no neighbour table, want an error")
	}
	if _, err := (&rtnl.NeighTableParams{RetransTime: new(-time.Second)}).MarshalBinary(); err == nil {
		t.Fatal("negative duration: want an error")
	}
	b6, _ := (&rtnl.NeighTableParams{Family: rtnl.FamilyInet6}).MarshalBinary()
	if !bytes.Contains(b6, []byte("ndisc_cache\x00")) {
		t.Fatalf("AF_INET6 table name missing: % x", b6)
	}
}

func BenchmarkNeighUnmarshal(b *testing.B) {
	msgs := [][]byte{neighMissL3(), bytes.Join([][]byte{
		neighHeader(rtnl.FamilyInet, 7, 0x04, 0, 0),
		neighAttr(2, 0x02, 0x42, 0xc6, 0x33, 0x64, 0x0a),
		neighAttr(7, neighU32(42)...),
		neighAttr(3, make([]byte, 16)...),
	}, nil)}
	var m rtnl.NeighMessage
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := m.UnmarshalBinary(msgs[i&1]); err != nil {
			b.Fatal(err)
		}
	}
}
