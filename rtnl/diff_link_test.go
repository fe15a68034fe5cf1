package rtnl_test

// The differential tests of diff_test.go for LinkMessage; see there.

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/jsimonetti/rtnetlink"
	"github.com/mdlayher/netlink"
	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Links: the differential tests of diff_test.go for LinkMessage.

// oracleVxlanData encodes v with mdlayher/netlink the way iproute2 does
// (every flag sent explicitly).
func oracleVxlanData(t *testing.T, v rtnl.VxlanInfo) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(rtnl.IFLA_VXLAN_ID, v.ID)
	if v.Port != 0 {
		ae.Bytes(rtnl.IFLA_VXLAN_PORT, binary.BigEndian.AppendUint16(nil, v.Port))
	}
	addr := func(t4, t6 uint16, a netip.Addr) {
		if a.Is4() {
			ae.Bytes(t4, a.AsSlice())
		} else if a.IsValid() {
			ae.Bytes(t6, a.AsSlice())
		}
	}
	addr(rtnl.IFLA_VXLAN_LOCAL, rtnl.IFLA_VXLAN_LOCAL6, v.Local)
	addr(rtnl.IFLA_VXLAN_GROUP, rtnl.IFLA_VXLAN_GROUP6, v.Group)
	if v.Dev != 0 {
		ae.Uint32(rtnl.IFLA_VXLAN_LINK, uint32(v.Dev))
	}
	ae.Uint8(rtnl.IFLA_VXLAN_TTL, v.TTL)
	ae.Uint8(rtnl.IFLA_VXLAN_TOS, v.TOS)
	b2u := func(b bool) uint8 {
		if b {
			return 1
		}
		return 0
	}
	ae.Uint8(rtnl.IFLA_VXLAN_LEARNING, b2u(v.Learning))
	ae.Uint8(rtnl.IFLA_VXLAN_PROXY, b2u(v.Proxy))
	ae.Uint8(rtnl.IFLA_VXLAN_RSC, b2u(v.RSC))
	ae.Uint8(rtnl.IFLA_VXLAN_L2MISS, b2u(v.L2Miss))
	ae.Uint8(rtnl.IFLA_VXLAN_L3MISS, b2u(v.L3Miss))
	ae.Uint32(rtnl.IFLA_VXLAN_AGEING, v.Ageing)
	ae.Uint32(rtnl.IFLA_VXLAN_LIMIT, v.Limit)
	ae.Bytes(rtnl.IFLA_VXLAN_PORT_RANGE, binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, v.PortLow), v.PortHigh))
	b, err := ae.Encode()
	if err != nil {
		t.Fatalf("oracle vxlan encode: %v", err)
	}
	return b
}

// oracleVxlanInfo decodes IFLA_INFO_DATA of a vxlan with mdlayher/netlink.
func oracleVxlanInfo(t *testing.T, b []byte) rtnl.VxlanInfo {
	var v rtnl.VxlanInfo
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatalf("oracle vxlan decode: %v", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case rtnl.IFLA_VXLAN_ID:
			v.ID = ad.Uint32()
		case rtnl.IFLA_VXLAN_PORT:
			v.Port = binary.BigEndian.Uint16(ad.Bytes())
		case rtnl.IFLA_VXLAN_LOCAL, rtnl.IFLA_VXLAN_LOCAL6:
			v.Local = jsIP(ad.Bytes())
		case rtnl.IFLA_VXLAN_GROUP, rtnl.IFLA_VXLAN_GROUP6:
			v.Group = jsIP(ad.Bytes())
		case rtnl.IFLA_VXLAN_LINK:
			v.Dev = int32(ad.Uint32())
		case rtnl.IFLA_VXLAN_TTL:
			v.TTL = ad.Uint8()
		case rtnl.IFLA_VXLAN_TOS:
			v.TOS = ad.Uint8()
		case rtnl.IFLA_VXLAN_LEARNING:
			v.Learning = ad.Uint8() != 0
		case rtnl.IFLA_VXLAN_PROXY:
			v.Proxy = ad.Uint8() != 0
		case rtnl.IFLA_VXLAN_RSC:
			v.RSC = ad.Uint8() != 0
		case rtnl.IFLA_VXLAN_L2MISS:
			v.L2Miss = ad.Uint8() != 0
		case rtnl.IFLA_VXLAN_L3MISS:
			v.L3Miss = ad.Uint8() != 0
		case rtnl.IFLA_VXLAN_AGEING:
			v.Ageing = ad.Uint32()
		case rtnl.IFLA_VXLAN_LIMIT:
			v.Limit = ad.Uint32()
		case rtnl.IFLA_VXLAN_PORT_RANGE:
			v.PortLow = binary.BigEndian.Uint16(ad.Bytes()[0:2])
			v.PortHigh = binary.BigEndian.Uint16(ad.Bytes()[2:4])
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatalf("oracle vxlan decode: %v", err)
	}
	return v
}

// oracleBridgeInfo decodes IFLA_INFO_DATA of a bridge with mdlayher/netlink.
func oracleBridgeInfo(t *testing.T, b []byte) rtnl.BridgeInfo {
	var br rtnl.BridgeInfo
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatalf("oracle bridge decode: %v", err)
	}
	for ad.Next() {
		switch ad.Type() {
		case rtnl.IFLA_BR_FORWARD_DELAY:
			br.ForwardDelay = ad.Uint32()
		case rtnl.IFLA_BR_HELLO_TIME:
			br.HelloTime = ad.Uint32()
		case rtnl.IFLA_BR_MAX_AGE:
			br.MaxAge = ad.Uint32()
		case rtnl.IFLA_BR_AGEING_TIME:
			br.AgeingTime = ad.Uint32()
		case rtnl.IFLA_BR_STP_STATE:
			br.STPState = ad.Uint32()
		case rtnl.IFLA_BR_PRIORITY:
			br.Priority = ad.Uint16()
		case rtnl.IFLA_BR_VLAN_FILTERING:
			br.VlanFiltering = ad.Uint8() != 0
		case rtnl.IFLA_BR_MCAST_SNOOPING:
			br.MulticastSnooping = ad.Uint8() != 0
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatalf("oracle bridge decode: %v", err)
	}
	return br
}

// oracleVethPeer extracts VETH_INFO_PEER from a veth's IFLA_INFO_DATA and
// decodes it with jsimonetti (nil if absent).
func oracleVethPeer(t *testing.T, b []byte) *rtnetlink.LinkMessage {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatalf("oracle veth decode: %v", err)
	}
	for ad.Next() {
		if ad.Type() == 1 { // VETH_INFO_PEER
			var p rtnetlink.LinkMessage
			if err := p.UnmarshalBinary(ad.Bytes()); err != nil {
				t.Fatalf("jsimonetti veth peer decode: %v", err)
			}
			return &p
		}
	}
	return nil
}

func macOrNil(m ethaddr.MAC) net.HardwareAddr {
	if m.IsZero() {
		return nil
	}
	return net.HardwareAddr(m[:])
}

// compareLink checks the fields both libraries model.
//
// Skipped: jsimonetti has no field for IFLA_LINK_NETNSID, IFLA_MIN_MTU,
// IFLA_MAX_MTU, IFLA_NET_NS_FD and IFLA_NET_NS_PID, and its ifi_family is
// always encoded as 0. It calls IFLA_LINK "Type" (Attributes.Type).
func compareLink(t *testing.T, what string, r *rtnl.LinkMessage, j *rtnetlink.LinkMessage) {
	t.Helper()
	c := fieldChecker{t, what}
	c.eq("ifi_type", r.Type, j.Type)
	c.eq("index", uint32(r.Index), j.Index)
	c.eq("flags", uint32(r.Flags), j.Flags)
	c.eq("change", uint32(r.Change), j.Change)
	a := j.Attributes
	if a == nil {
		a = &rtnetlink.LinkAttributes{}
	}
	c.eq("name", r.Name, a.Name)
	c.eq("mtu", r.MTU, a.MTU)
	c.eq("address", macOrNil(r.Address).String(), a.Address.String())
	c.eq("broadcast", macOrNil(r.Broadcast).String(), a.Broadcast.String())
	c.eq("IFLA_LINK", uint32(r.Link), a.Type)
	c.eq("operstate", uint8(r.OperState), uint8(a.OperationalState))
	if r.Master != 0 || r.Present&rtnl.LinkHasMaster != 0 {
		c.eq("master", jsU32(uint32(r.Master)), a.Master)
	} else if a.Master != nil {
		t.Errorf("%s: jsimonetti found IFLA_MASTER %d, rtnl none", what, *a.Master)
	}
	if r.TxQLen != 0 || r.Present&rtnl.LinkHasTxQLen != 0 {
		c.eq("txqlen", jsU32(r.TxQLen), a.TxQueueLen)
	} else if a.TxQueueLen != nil {
		t.Errorf("%s: jsimonetti found IFLA_TXQLEN %d, rtnl none", what, *a.TxQueueLen)
	}
	if (r.Alias != "") != (a.Alias != nil) || a.Alias != nil && *a.Alias != r.Alias {
		t.Errorf("%s: alias rtnl %q, jsimonetti %v", what, r.Alias, a.Alias)
	}
	if r.Info == nil || a.Info == nil {
		if (r.Info == nil) != (a.Info == nil) {
			t.Errorf("%s: IFLA_LINKINFO rtnl %v, jsimonetti %v", what, r.Info, a.Info)
		}
		return
	}
	c.eq("kind", r.Info.Kind, a.Info.Kind)
	c.eq("slave kind", r.Info.SlaveKind, a.Info.SlaveKind)
	switch {
	case r.Info.Vxlan != nil:
		c.eq("vxlan data", *r.Info.Vxlan, oracleVxlanInfo(t, a.Info.Data))
	case r.Info.Bridge != nil:
		c.eq("bridge data", *r.Info.Bridge, oracleBridgeInfo(t, a.Info.Data))
	case r.Info.Peer != nil:
		jp := oracleVethPeer(t, a.Info.Data)
		if jp == nil {
			t.Fatalf("%s: jsimonetti found no VETH_INFO_PEER", what)
		}
		compareLink(t, what+" peer", r.Info.Peer, jp)
	default:
		if !bytes.Equal(r.Info.Data, a.Info.Data) {
			t.Errorf("%s: IFLA_INFO_DATA rtnl %x, jsimonetti %x", what, r.Info.Data, a.Info.Data)
		}
	}
}

func TestDiffLinkRtnlToJsimonetti(t *testing.T) {
	vx := rtnl.NewVxlan("vxlan1", rtnl.VxlanInfo{
		ID: 42, Port: rtnl.VxlanPort, Local: netip.MustParseAddr("192.0.2.1"), Dev: 2, TTL: 64,
		Learning: false, Proxy: true, L2Miss: true, L3Miss: true, Ageing: 300, PortLow: 40000, PortHigh: 50000,
	})
	vx6 := rtnl.NewVxlan("vxlan6", rtnl.VxlanInfo{ID: 7, Group: netip.MustParseAddr("ff05::100"), Learning: true, RSC: true, Limit: 100})
	br := rtnl.NewBridge("br0")
	br.MTU, br.Address = 1450, goldenMAC("02:42:c6:33:64:01")
	brInfo := rtnl.NewBridge("br1")
	brInfo.Info.Bridge = &rtnl.BridgeInfo{STPState: 1, AgeingTime: 6000, Priority: 4096, VlanFiltering: true}
	veth := rtnl.NewVethPair("veth1", rtnl.LinkMessage{Name: "eth0", MTU: 1450, Address: goldenMAC("02:42:c6:33:64:02")})
	veth.MTU = 1450
	set := &rtnl.LinkMessage{Index: 4, Flags: rtnl.LinkUp, Change: rtnl.LinkUp, Master: 2, Alias: "ctn pink",
		TxQLen: 0, Present: rtnl.LinkHasTxQLen, OperState: rtnl.OperUp, Link: 9, Type: rtnl.ARPHRD_ETHER}
	nomaster := &rtnl.LinkMessage{Index: 4, Present: rtnl.LinkHasMaster} // IFLA_MASTER 0 detaches
	for _, tc := range []struct {
		name string
		m    *rtnl.LinkMessage
	}{
		{"bridge", br}, {"bridge data", brInfo}, {"vxlan", vx}, {"vxlan6", vx6}, {"veth", veth},
		{"set", set}, {"nomaster", nomaster},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var j rtnetlink.LinkMessage
			if err := j.UnmarshalBinary(b); err != nil {
				t.Fatalf("jsimonetti decode: %v", err)
			}
			compareLink(t, tc.name, tc.m, &j)
		})
	}
}

func TestDiffLinkJsimonettiToRtnl(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x42, 0xc6, 0x33, 0x64, 0x0a}
	peer := rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{Name: "eth0", MTU: 1450, Address: mac}}
	peerBytes, err := peer.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	vethData := netlink.NewAttributeEncoder()
	vethData.Bytes(1, peerBytes) // VETH_INFO_PEER
	vethBytes, err := vethData.Encode()
	if err != nil {
		t.Fatal(err)
	}
	brData := netlink.NewAttributeEncoder()
	brData.Uint32(rtnl.IFLA_BR_STP_STATE, 0)
	brData.Uint32(rtnl.IFLA_BR_FORWARD_DELAY, 200)
	brData.Uint8(rtnl.IFLA_BR_MCAST_SNOOPING, 1)
	brBytes, err := brData.Encode()
	if err != nil {
		t.Fatal(err)
	}
	vxlan := rtnl.VxlanInfo{ID: 42, Port: 4789, Local: netip.MustParseAddr("192.0.2.1"), Proxy: true, L2Miss: true,
		L3Miss: true, Ageing: 300, TTL: 8}
	for _, tc := range []struct {
		name string
		m    rtnetlink.LinkMessage
	}{
		{"bridge", rtnetlink.LinkMessage{Type: rtnl.ARPHRD_ETHER, Attributes: &rtnetlink.LinkAttributes{
			Name: "br0", MTU: 1500, Address: mac, Info: &rtnetlink.LinkInfo{Kind: "bridge", Data: brBytes}}}},
		{"bridge no data", rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{
			Name: "br1", Info: &rtnetlink.LinkInfo{Kind: "bridge"}}}},
		{"vxlan", rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{
			Name: "vxlan1", Master: jsU32(2), Info: &rtnetlink.LinkInfo{Kind: "vxlan", Data: oracleVxlanData(t, vxlan)}}}},
		{"veth", rtnetlink.LinkMessage{Attributes: &rtnetlink.LinkAttributes{
			Name: "veth1", MTU: 1450, Info: &rtnetlink.LinkInfo{Kind: "veth", Data: vethBytes}}}},
		{"set up", rtnetlink.LinkMessage{Index: 4, Flags: rtnl.IFF_UP, Change: rtnl.IFF_UP,
			Attributes: &rtnetlink.LinkAttributes{Type: 3, OperationalState: rtnetlink.OperStateUp,
				Broadcast: net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var r rtnl.LinkMessage
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatalf("rtnl decode: %v", err)
			}
			compareLink(t, tc.name, &r, &tc.m)
		})
	}
}
