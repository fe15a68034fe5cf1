package rtnl_test

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// ndmsg builds a neighbour message payload: a 12-byte ndmsg and raw
// attributes (type, payload) pairs.
func ndmsg(family uint8, ifindex int32, state uint16, attrs ...any) []byte {
	b := make([]byte, 12)
	b[0] = family
	binary.NativeEndian.PutUint32(b[4:8], uint32(ifindex))
	binary.NativeEndian.PutUint16(b[8:10], state)
	ae := rtnl.NewAttributeEncoder(b)
	for i := 0; i+1 < len(attrs); i += 2 {
		ae.Raw(uint16(attrs[i].(rtnl.NeighAttr)), attrs[i+1].([]byte))
	}
	return ae.Bytes()
}

// ne32 is v in host byte order, as netlink carries it.
func ne32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestClassifyKernelMessages(t *testing.T) {
	tests := []struct {
		file string
		kind rtnl.EventKind
		miss rtnl.Miss // for EventMiss
		// for neighbour events
		neighDst netip.Addr
		neighMAC string
		neighVNI uint32
	}{
		{file: "l3miss", kind: rtnl.EventMiss, miss: rtnl.Miss{
			Kind: rtnl.MissL3, Family: rtnl.FamilyInet, Ifindex: 3, State: rtnl.NeighStale,
			IP: netip.MustParseAddr("198.51.100.9"), VNI: 1 << 24, HasVNI: true,
			LinkNetnsID: 1, HasLinkNetnsID: true,
		}},
		{file: "l3miss_v6", kind: rtnl.EventMiss, miss: rtnl.Miss{
			Kind: rtnl.MissL3, Family: rtnl.FamilyInet6, Ifindex: 3, State: rtnl.NeighStale,
			IP: netip.MustParseAddr("fe80::42:c6ff:fe33:6409"), VNI: 1 << 24, HasVNI: true,
			LinkNetnsID: 1, HasLinkNetnsID: true,
		}},
		{file: "l2miss", kind: rtnl.EventMiss, miss: rtnl.Miss{
			Kind: rtnl.MissL2, Family: rtnl.FamilyInet, Ifindex: 3, State: rtnl.NeighStale,
			MAC: ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x07}, HasMAC: true, HasVNI: true,
			LinkNetnsID: 1, HasLinkNetnsID: true,
		}},
		{file: "app_solicit", kind: rtnl.EventMiss, miss: rtnl.Miss{
			Kind: rtnl.MissAppSolicit, Family: rtnl.FamilyInet, Ifindex: 2, State: rtnl.NeighIncomplete,
			IP: netip.MustParseAddr("198.51.100.8"), Probes: 3,
		}},
		{file: "app_solicit_probe", kind: rtnl.EventMiss, miss: rtnl.Miss{
			Kind: rtnl.MissAppSolicit, Family: rtnl.FamilyInet, Ifindex: 2, State: rtnl.NeighProbe,
			IP: netip.MustParseAddr("198.51.100.6"), MAC: ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x06}, HasMAC: true,
		}},
		{file: "fdb_echo", kind: rtnl.EventNeighAdd,
			neighDst: netip.MustParseAddr("192.0.2.3"), neighMAC: "02:42:c6:33:64:03", neighVNI: 43},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h, body, raw := readKernelMessage(t, tt.file)
			var ev rtnl.Event
			ok, err := rtnl.ClassifyPayload(h, body, &ev)
			if err != nil || !ok {
				t.Fatalf("Classify: ok=%v err=%v", ok, err)
			}
			if ev.Kind != tt.kind || ev.PortID != h.PID {
				t.Fatalf("event kind %v port %d, want %v port %d", ev.Kind, ev.PortID, tt.kind, h.PID)
			}
			if tt.kind == rtnl.EventMiss {
				if ev.Miss != tt.miss {
					t.Errorf("miss\n got %+v\nwant %+v", ev.Miss, tt.miss)
				}
				var m rtnl.Miss
				if err := rtnl.DecodeMiss(h.Flags, body, &m); err != nil || m != tt.miss {
					t.Errorf("DecodeMiss: %+v, %v", m, err)
				}
				var ev2 rtnl.Event
				if ok, err := rtnl.Classify(raw, &ev2); !ok || err != nil || ev2.Miss != tt.miss {
					t.Errorf("Classify: %v %v %+v", ok, err, ev2.Miss)
				}
				return
			}
			n := ev.Neigh
			if n.Family != rtnl.FamilyBridge || n.Dst != tt.neighDst || n.LLAddr.String() != tt.neighMAC || n.VNI != tt.neighVNI {
				t.Errorf("neighbour %v: want AF_BRIDGE dst %v mac %s vni %d", &n, tt.neighDst, tt.neighMAC, tt.neighVNI)
			}
		})
	}
}

func TestClassifySynthetic(t *testing.T) {
	dst := []byte{198, 51, 100, 3}
	mac := []byte{2, 0x42, 0xc6, 0x33, 0x64, 3}
	get := rtnl.Header{Type: rtnl.MsgGetNeigh}
	req := rtnl.Header{Type: rtnl.MsgGetNeigh, Flags: rtnl.FlagRequest}
	tests := []struct {
		name    string
		h       rtnl.Header
		data    []byte
		ok      bool
		wantErr bool
		kind    rtnl.EventKind
		miss    rtnl.MissKind
	}{
		{"l3", get, ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrDst, dst), true, false, rtnl.EventMiss, rtnl.MissL3},
		{"l2", get, ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrLLAddr, mac), true, false, rtnl.EventMiss, rtnl.MissL2},
		{"app_solicit", req, ndmsg(rtnl.FamilyInet, 5, 1, rtnl.NeighAttrDst, dst, rtnl.NeighAttrProbes, ne32(1)), true, false, rtnl.EventMiss, rtnl.MissAppSolicit},
		{"unknown attribute skipped", get, ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttr(99), []byte{1}, rtnl.NeighAttrDst, dst), true, false, rtnl.EventMiss, rtnl.MissL3},
		{"nested flag masked", get, func() []byte {
			b := ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrDst, dst)
			typ := binary.NativeEndian.Uint16(b[14:]) // nla_type of the first attribute
			binary.NativeEndian.PutUint16(b[14:], typ|rtnl.AttrNested)
			return b
		}(), true, false, rtnl.EventMiss, rtnl.MissL3},
		{"bridge family ignored", get, ndmsg(rtnl.FamilyBridge, 5, 4, rtnl.NeighAttrLLAddr, mac), false, false, 0, 0},
		{"link message ignored", rtnl.Header{Type: rtnl.MsgNewLink}, make([]byte, 16), false, false, 0, 0},
		{"new neigh", rtnl.Header{Type: rtnl.MsgNewNeigh}, ndmsg(rtnl.FamilyInet, 5, 0x80, rtnl.NeighAttrDst, dst, rtnl.NeighAttrLLAddr, mac), true, false, rtnl.EventNeighAdd, 0},
		{"del neigh", rtnl.Header{Type: rtnl.MsgDelNeigh}, ndmsg(rtnl.FamilyInet, 5, 0x20, rtnl.NeighAttrDst, dst), true, false, rtnl.EventNeighDelete, 0},
		{"short", get, make([]byte, 11), false, true, 0, 0},
		{"no address", get, ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrVNI, ne32(42)), false, true, 0, 0},
		{"app_solicit without dst", req, ndmsg(rtnl.FamilyInet, 5, 1, rtnl.NeighAttrLLAddr, mac), false, true, 0, 0},
		{"dst of 5 bytes", get, ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrDst, []byte{1, 2, 3, 4, 5}), false, true, 0, 0},
		{"lladdr of 8 bytes", get, ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrLLAddr, make([]byte, 8)), false, true, 0, 0},
		{"vni of 2 bytes", get, ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrDst, dst, rtnl.NeighAttrVNI, []byte{1, 2}), false, true, 0, 0},
		{"attribute overruns", get, catBytes(ndmsg(rtnl.FamilyInet, 5, 4), rawAttr(1, 40, 1, 2, 3, 4)), false, true, 0, 0},
		{"trailing bytes", get, append(ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrDst, dst), 1, 2), false, true, 0, 0},
		{"bad new neigh", rtnl.Header{Type: rtnl.MsgNewNeigh}, make([]byte, 3), false, true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev rtnl.Event
			ok, err := rtnl.ClassifyPayload(tt.h, tt.data, &ev)
			if ok != tt.ok || (err != nil) != tt.wantErr {
				t.Fatalf("Classify: ok=%v err=%v, want ok=%v error=%v", ok, err, tt.ok, tt.wantErr)
			}
			if ok && (ev.Kind != tt.kind || (tt.kind == rtnl.EventMiss && ev.Miss.Kind != tt.miss)) {
				t.Fatalf("got %v/%v, want %v/%v", ev.Kind, ev.Miss.Kind, tt.kind, tt.miss)
			}
			if ok && tt.kind == rtnl.EventMiss && ev.Miss.Ifindex != 5 {
				t.Errorf("ifindex %d, want 5", ev.Miss.Ifindex)
			}
		})
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	for _, name := range []string{"l3miss", "l3miss_v6", "l2miss", "app_solicit", "fdb_echo"} {
		h, body, _ := readKernelMessage(t, name)
		var ev rtnl.Event
		rtnl.ClassifyPayload(h, body, &ev) // first decode sizes Neigh.LLAddr
		allocs := testing.AllocsPerRun(1000, func() {
			if ok, err := rtnl.ClassifyPayload(h, body, &ev); !ok || err != nil {
				t.Fatalf("%s: ok=%v err=%v", name, ok, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per Classify, want 0", name, allocs)
		}
	}
	for _, name := range []string{"l3miss", "l3miss_v6", "l2miss", "app_solicit"} {
		_, _, raw := readKernelMessage(t, name)
		var ev rtnl.Event
		if a := testing.AllocsPerRun(1000, func() { rtnl.Classify(raw, &ev) }); a != 0 {
			t.Errorf("Classify %s: %v allocations, want 0", name, a)
		}
	}
	// Malformed misses are rejected without allocating either.
	bad := ndmsg(rtnl.FamilyInet, 5, 4, rtnl.NeighAttrDst, []byte{1, 2, 3})
	var ev rtnl.Event
	if a := testing.AllocsPerRun(100, func() { rtnl.ClassifyPayload(rtnl.Header{Type: rtnl.MsgGetNeigh}, bad, &ev) }); a != 0 {
		t.Errorf("malformed miss: %v allocations, want 0", a)
	}
}

func TestMissAndEventKindStrings(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{rtnl.MissL3.String(), "l3miss"},
		{rtnl.MissL2.String(), "l2miss"},
		{rtnl.MissAppSolicit.String(), "app_solicit"},
		{rtnl.MissKind(9).String(), "MissKind(9)"},
		{rtnl.EventMiss.String(), "miss"},
		{rtnl.EventNeighAdd.String(), "neigh_add"},
		{rtnl.EventNeighDelete.String(), "neigh_delete"},
		{rtnl.EventOverrun.String(), "overrun"},
		{rtnl.EventKind(0).String(), "EventKind(0)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	for _, name := range []string{"l3miss", "l2miss", "app_solicit", "fdb_echo"} {
		_, _, raw := readKernelMessage(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var ev rtnl.Event
			for b.Loop() {
				if _, err := rtnl.Classify(raw, &ev); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
