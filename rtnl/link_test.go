package rtnl_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"reflect"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

func linkCodecCases() []struct {
	name string
	m    rtnl.LinkMessage
} {
	mac := ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x02}
	return []struct {
		name string
		m    rtnl.LinkMessage
	}{
		{"empty", rtnl.LinkMessage{}},
		{"header only", rtnl.LinkMessage{Family: 7, Type: 1, Index: 12, Flags: rtnl.LinkUp | rtnl.LinkLowerUp, Change: rtnl.LinkUp}},
		{"attributes", rtnl.LinkMessage{
			Index: 3, Name: "eth0", Alias: "container pink", Address: mac, Broadcast: ethaddr.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
			MTU: 1450, MinMTU: 68, MaxMTU: 65535, TxQLen: 1000, Link: 9, Master: 4, OperState: rtnl.OperUp,
			LinkNetNSID: 2, NetNSFD: 7, NetNSPID: 4242,
			Present: rtnl.LinkHasTxQLen | rtnl.LinkHasLink | rtnl.LinkHasMaster | rtnl.LinkHasOperState |
				rtnl.LinkHasLinkNetNSID | rtnl.LinkHasNetNSFD,
		}},
		{"zero values sent because present", rtnl.LinkMessage{
			Index: 3, Present: rtnl.LinkHasMaster | rtnl.LinkHasTxQLen | rtnl.LinkHasLinkNetNSID | rtnl.LinkHasNetNSFD |
				rtnl.LinkHasLink | rtnl.LinkHasOperState,
		}},
		{"bridge", rtnl.LinkMessage{Name: "br0", Info: &rtnl.LinkInfo{Kind: "bridge", Bridge: &rtnl.BridgeInfo{
			ForwardDelay: 1500, HelloTime: 200, MaxAge: 2000, AgeingTime: 30000, STPState: 1, Priority: 32768,
			VlanFiltering: true, MulticastSnooping: true,
		}}}},
		{"bridge port", rtnl.LinkMessage{Name: "veth1", Master: 2, Present: rtnl.LinkHasMaster,
			Info: &rtnl.LinkInfo{Kind: "veth", SlaveKind: "bridge"}}},
		{"vxlan v4", rtnl.LinkMessage{Name: "vxlan1", NetNSFD: 5, Present: rtnl.LinkHasNetNSFD,
			Info: &rtnl.LinkInfo{Kind: "vxlan", Vxlan: &rtnl.VxlanInfo{
				ID: 42, Port: 4789, Local: netip.MustParseAddr("192.0.2.1"), Group: netip.MustParseAddr("239.1.1.1"),
				Dev: 2, TTL: 64, TOS: 1, Learning: true, Proxy: true, RSC: true, L2Miss: true, L3Miss: true,
				Ageing: 300, Limit: 10, PortLow: 1000, PortHigh: 2000,
			}}}},
		{"vxlan v6", rtnl.LinkMessage{Name: "vxlan6", Info: &rtnl.LinkInfo{Kind: "vxlan", Vxlan: &rtnl.VxlanInfo{
			ID: 1, Local: netip.MustParseAddr("2001:db8::1"), Group: netip.MustParseAddr("ff05::100"),
		}}}},
		// The decoder marks every zero-able attribute it reads as present.
		{"veth with peer", rtnl.LinkMessage{Name: "veth1", MTU: 1450, NetNSFD: 3, Present: rtnl.LinkHasNetNSFD,
			Info: &rtnl.LinkInfo{Kind: "veth", Peer: &rtnl.LinkMessage{
				Name: "eth0", MTU: 1450, Address: mac, NetNSFD: 4, Present: rtnl.LinkHasNetNSFD,
			}}}},
		{"other kind raw data", rtnl.LinkMessage{Name: "x0", Info: &rtnl.LinkInfo{Kind: "macvlan",
			Data: rawAttr(1, 8, ne32(4)...)}}},
	}
}

func TestLinkMessageRoundTrip(t *testing.T) {
	for _, tt := range linkCodecCases() {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			prefix := []byte("keep")
			b2, err := tt.m.AppendBinary(prefix)
			if err != nil || !bytes.Equal(b2[:4], prefix) || !bytes.Equal(b2[4:], b) {
				t.Fatalf("AppendBinary differs from MarshalBinary: %v", err)
			}
			var got rtnl.LinkMessage
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("round trip\n got %+v\nwant %+v", got, tt.m)
			}
			if got.Info != nil && !reflect.DeepEqual(*got.Info, *tt.m.Info) {
				t.Fatalf("info\n got %+v\nwant %+v", *got.Info, *tt.m.Info)
			}
		})
	}
}

func TestLinkMessageTruncatedNeverPanics(t *testing.T) {
	for _, tt := range linkCodecCases() {
		b, err := tt.m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(b); i++ {
			var m rtnl.LinkMessage
			err := m.UnmarshalBinary(b[:i])
			if i < rtnl.SizeofIfInfomsg && err == nil {
				t.Errorf("%s: %d bytes accepted", tt.name, i)
			}
			// A cut inside the first attribute's header or payload is an error.
			if i > rtnl.SizeofIfInfomsg && len(b) > rtnl.SizeofIfInfomsg+4 {
				first := int(binary.NativeEndian.Uint16(b[rtnl.SizeofIfInfomsg:]))
				if i < rtnl.SizeofIfInfomsg+first && err == nil {
					t.Errorf("%s: cut at %d inside the first attribute accepted", tt.name, i)
				}
			}
		}
	}
}

func TestLinkMessageRejectsMalformedAttributes(t *testing.T) {
	hdr := make([]byte, rtnl.SizeofIfInfomsg)
	build := func(f func(ae *rtnl.AttributeEncoder)) []byte {
		ae := rtnl.NewAttributeEncoder(append([]byte{}, hdr...))
		f(&ae)
		return ae.Bytes()
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"short MTU", build(func(ae *rtnl.AttributeEncoder) { ae.Raw(rtnl.IFLA_MTU, []byte{1, 2, 3}) })},
		{"short master", build(func(ae *rtnl.AttributeEncoder) { ae.Uint16(rtnl.IFLA_MASTER, 1) })},
		{"attribute longer than message", catBytes(hdr, rawAttr(3, 40, 'a'))},
		{"bad nest in linkinfo", build(func(ae *rtnl.AttributeEncoder) { ae.Raw(rtnl.IFLA_LINKINFO, rawAttr(1, 99)) })},
		{"short vxlan id", build(func(ae *rtnl.AttributeEncoder) {
			li := ae.Begin(rtnl.IFLA_LINKINFO)
			ae.String(rtnl.IFLA_INFO_KIND, "vxlan")
			d := ae.Begin(rtnl.IFLA_INFO_DATA)
			ae.Uint16(rtnl.IFLA_VXLAN_ID, 42)
			ae.End(d)
			ae.End(li)
		})},
		{"vxlan local of 5 bytes", build(func(ae *rtnl.AttributeEncoder) {
			li := ae.Begin(rtnl.IFLA_LINKINFO)
			ae.String(rtnl.IFLA_INFO_KIND, "vxlan")
			d := ae.Begin(rtnl.IFLA_INFO_DATA)
			ae.Raw(rtnl.IFLA_VXLAN_LOCAL, []byte{1, 2, 3, 4, 5})
			ae.End(d)
			ae.End(li)
		})},
		{"vxlan port range of 2 bytes", build(func(ae *rtnl.AttributeEncoder) {
			li := ae.Begin(rtnl.IFLA_LINKINFO)
			ae.String(rtnl.IFLA_INFO_KIND, "vxlan")
			d := ae.Begin(rtnl.IFLA_INFO_DATA)
			ae.Raw(rtnl.IFLA_VXLAN_PORT_RANGE, []byte{1, 2})
			ae.End(d)
			ae.End(li)
		})},
		{"veth peer shorter than ifinfomsg", build(func(ae *rtnl.AttributeEncoder) {
			li := ae.Begin(rtnl.IFLA_LINKINFO)
			ae.String(rtnl.IFLA_INFO_KIND, "veth")
			d := ae.Begin(rtnl.IFLA_INFO_DATA)
			ae.Raw(1, []byte{1, 2, 3})
			ae.End(d)
			ae.End(li)
		})},
	}
	for _, tt := range tests {
		var m rtnl.LinkMessage
		if err := m.UnmarshalBinary(tt.b); err == nil {
			t.Errorf("%s: accepted: %+v", tt.name, m)
		}
	}

	// Non-Ethernet hardware addresses (ipip's tunl0 has 4 bytes) are skipped,
	// not errors: a dump must survive them.
	var m rtnl.LinkMessage
	b := build(func(ae *rtnl.AttributeEncoder) {
		ae.Raw(rtnl.IFLA_ADDRESS, []byte{0, 0, 0, 0})
		ae.String(rtnl.IFLA_IFNAME, "tunl0")
	})
	if err := m.UnmarshalBinary(b); err != nil || m.Name != "tunl0" || m.Address != [6]byte{} {
		t.Errorf("4-byte IFLA_ADDRESS: %v, %+v", err, m)
	}
}

func TestLinkMessageEncodingLayout(t *testing.T) {
	// IFLA_VXLAN_PORT is big-endian, IFLA_VXLAN_ID host order; Learning is sent
	// even when false; VETH_INFO_PEER is an unflagged ifinfomsg + attributes.
	m := rtnl.NewVxlan("vxlan1", rtnl.VxlanInfo{ID: 42, Port: 4789})
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	data := nestedPayload(t, b[rtnl.SizeofIfInfomsg:], rtnl.IFLA_LINKINFO, rtnl.IFLA_INFO_DATA)
	got := map[uint16][]byte{}
	ad := rtnl.NewAttributeDecoder(data)
	for ad.Next() {
		got[ad.Type()] = ad.Bytes()
	}
	want := map[uint16][]byte{
		rtnl.IFLA_VXLAN_ID:       binary.NativeEndian.AppendUint32(nil, 42),
		rtnl.IFLA_VXLAN_PORT:     {0x12, 0xb5},
		rtnl.IFLA_VXLAN_LEARNING: {0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vxlan data = %v, want %v", got, want)
	}

	v := rtnl.NewVethPair("veth1", rtnl.LinkMessage{Name: "eth0"})
	b, err = v.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	data = nestedPayload(t, b[rtnl.SizeofIfInfomsg:], rtnl.IFLA_LINKINFO, rtnl.IFLA_INFO_DATA)
	if typ := binary.NativeEndian.Uint16(data[2:4]); typ != 1 {
		t.Fatalf("VETH_INFO_PEER type %#x, want 1 without NLA_F_NESTED", typ)
	}
	var peer rtnl.LinkMessage
	if err := peer.UnmarshalBinary(data[4:]); err != nil || peer.Name != "eth0" {
		t.Fatalf("peer = %+v, %v", peer, err)
	}

	if _, err := (&rtnl.LinkMessage{Name: "sixteen-bytes-xx"}).MarshalBinary(); err == nil {
		t.Error("16-byte name accepted")
	}
	if _, err := rtnl.NewVxlan("v", rtnl.VxlanInfo{ID: 1 << 24}).MarshalBinary(); err == nil {
		t.Error("VNI 1<<24 accepted")
	}
	if _, err := (&rtnl.LinkMessage{NetNSFD: -1}).MarshalBinary(); err == nil {
		t.Error("negative netns fd accepted")
	}
}

// nestedPayload follows a path of nested attribute types and returns the
// innermost payload.
func nestedPayload(t *testing.T, b []byte, path ...uint16) []byte {
	t.Helper()
	for _, typ := range path {
		ad := rtnl.NewAttributeDecoder(b)
		found := false
		for ad.Next() {
			if ad.Type() == typ {
				b, found = ad.Bytes(), true
				break
			}
		}
		if !found {
			t.Fatalf("attribute %d not found", typ)
		}
	}
	return b
}

func TestLinkStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{rtnl.LinkFlags(0).String(), "0"},
		{(rtnl.LinkUp | rtnl.LinkBroadcast | rtnl.LinkMulticast | rtnl.LinkLowerUp).String(), "UP|BROADCAST|MULTICAST|LOWER_UP"},
		{(rtnl.LinkNoARP | 1<<30).String(), "NOARP|0x40000000"},
		{rtnl.OperUp.String(), "UP"},
		{rtnl.OperLowerLayerDown.String(), "LOWERLAYERDOWN"},
		{rtnl.OperState(9).String(), "OperState(9)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
