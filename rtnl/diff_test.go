package rtnl_test

// Differential tests against github.com/jsimonetti/rtnetlink (an oracle only:
// external test package, never imported by rtnl itself). Three directions:
// what rtnl encodes jsimonetti decodes to the same fields, what jsimonetti
// encodes rtnl decodes to the same fields, and the captured kernel messages
// decode to the same fields with both. jsimonetti cannot express every
// attribute; the fields it lacks are skipped explicitly in the compare
// functions, with the reason.
//
// jsimonetti v1.4.2 keeps IFLA_INFO_DATA as raw bytes, so kind-specific data
// (vxlan, bridge, veth peer) is encoded and decoded on its side with
// mdlayher/netlink's attribute codec: an independent implementation.

import (
	"bytes"
	"net"
	"net/netip"
	"testing"

	"github.com/jsimonetti/rtnetlink"
	"github.com/overlaynet/overlaynet/rtnl"
)

// jsIP converts jsimonetti's net.IP (nil for absent) to a netip.Addr.
func jsIP(ip net.IP) netip.Addr {
	a, _ := netip.AddrFromSlice(ip)
	return a
}

func jsU32(v uint32) *uint32 { return &v }

// ---- neighbours ----

// compareNeigh checks the fields both libraries model.
//
// Skipped: jsimonetti's NeighAttributes has no field for NDA_PROBES,
// NDA_VLAN, NDA_PORT, NDA_VNI, NDA_MASTER, NDA_LINK_NETNSID, NDA_SRC_VNI,
// NDA_PROTOCOL, NDA_NH_ID and NDA_FLAGS_EXT, so those cannot be compared.
func compareNeigh(t *testing.T, what string, r *rtnl.NeighMessage, j *rtnetlink.NeighMessage, cacheInfo bool) {
	t.Helper()
	c := fieldChecker{t, what}
	c.eq("family", uint16(r.Family), j.Family)
	c.eq("ifindex", uint32(r.Ifindex), j.Index)
	c.eq("state", uint16(r.State), j.State)
	c.eq("flags", uint8(r.Flags), j.Flags)
	c.eq("type", r.Type, j.Type)
	if j.Attributes == nil {
		j.Attributes = &rtnetlink.NeighAttributes{}
	}
	c.eq("dst", r.Dst, jsIP(j.Attributes.Address))
	if !bytes.Equal(r.LLAddr, j.Attributes.LLAddress) {
		t.Errorf("%s: lladdr rtnl %v, jsimonetti %v", what, r.LLAddr, j.Attributes.LLAddress)
	}
	c.eq("NDA_IFINDEX", r.Via, j.Attributes.IfIndex)
	if cacheInfo {
		if j.Attributes.CacheInfo == nil {
			t.Errorf("%s: jsimonetti found no NDA_CACHEINFO", what)
		} else {
			c.eq("cacheinfo", r.CacheInfo, rtnl.NeighCacheInfo(*j.Attributes.CacheInfo))
		}
	}
}

func TestDiffNeighRtnlToJsimonetti(t *testing.T) {
	mac := goldenMAC("02:42:c6:33:64:02")
	fdbVia := rtnl.FDBEntry{Ifindex: 3, MAC: goldenMAC("02:42:c6:33:64:03"), Dst: netip.MustParseAddr("192.0.2.3"), Via: 7}.Message()
	withVNI := rtnl.FDBEntry{Ifindex: 3, MAC: mac, Dst: netip.MustParseAddr("192.0.2.4"), VNI: 43, Port: 4790}.Message()
	for _, tc := range []struct {
		name string
		m    *rtnl.NeighMessage
	}{
		{"arp v4", rtnl.ARPEntry{Ifindex: 3, IP: netip.MustParseAddr("198.51.100.2"), MAC: mac}.Message()},
		{"arp v6", rtnl.ARPEntry{Ifindex: 3, IP: netip.MustParseAddr("2001:db8::2"), MAC: mac}.Message()},
		{"fdb no vxlan attrs", rtnl.FDBEntry{Ifindex: 3, MAC: mac, Dst: netip.MustParseAddr("192.0.2.3")}.Message()},
		{"fdb via", fdbVia},
		// jsimonetti drops NDA_VNI / NDA_PORT (skipped); the rest must survive.
		{"fdb vni port", withVNI},
		{"incomplete no lladdr", &rtnl.NeighMessage{Family: rtnl.FamilyInet, Ifindex: 2, State: rtnl.NeighIncomplete,
			Type: rtnl.RTN_UNICAST, Dst: netip.MustParseAddr("198.51.100.8")}},
		{"router flags", &rtnl.NeighMessage{Family: rtnl.FamilyInet6, Ifindex: 9, State: rtnl.NeighReachable,
			Flags: rtnl.NeighFlagRouter | rtnl.NeighFlagExtLearned, Dst: netip.MustParseAddr("fe80::1"),
			LLAddr: mac.Bytes()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var j rtnetlink.NeighMessage
			if err := j.UnmarshalBinary(b); err != nil {
				t.Fatalf("jsimonetti decode: %v", err)
			}
			compareNeigh(t, tc.name, tc.m, &j, false)
		})
	}
}

func TestDiffNeighJsimonettiToRtnl(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0x42, 0xc6, 0x33, 0x64, 0x02}
	for _, tc := range []struct {
		name string
		m    rtnetlink.NeighMessage
	}{
		{"arp v4", rtnetlink.NeighMessage{Family: rtnl.FamilyInet, Index: 3, State: rtnl.NUD_PERMANENT, Type: rtnl.RTN_UNICAST,
			Attributes: &rtnetlink.NeighAttributes{Address: net.ParseIP("198.51.100.2").To4(), LLAddress: mac}}},
		{"arp v6", rtnetlink.NeighMessage{Family: rtnl.FamilyInet6, Index: 3, State: rtnl.NUD_REACHABLE, Flags: rtnl.NTF_ROUTER,
			Attributes: &rtnetlink.NeighAttributes{Address: net.ParseIP("2001:db8::2"), LLAddress: mac}}},
		{"fdb", rtnetlink.NeighMessage{Family: rtnl.FamilyBridge, Index: 3, State: rtnl.NUD_PERMANENT, Flags: rtnl.NTF_SELF,
			Attributes: &rtnetlink.NeighAttributes{Address: net.ParseIP("192.0.2.3").To4(), LLAddress: mac, IfIndex: 7}}},
		{"delete request", rtnetlink.NeighMessage{Family: rtnl.FamilyInet, Index: 12,
			Attributes: &rtnetlink.NeighAttributes{Address: net.ParseIP("198.51.100.200").To4()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var r rtnl.NeighMessage
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatalf("rtnl decode: %v", err)
			}
			compareNeigh(t, tc.name, &r, &tc.m, false)
		})
	}
}

// ---- addresses ----

// compareAddress checks the fields both libraries model. rtnl folds the
// ifa_flags byte and IFA_FLAGS into one Flags (IFA_FLAGS wins, as in the
// kernel); jsimonetti keeps both. Skipped: IFA_ANYCAST and IFA_MULTICAST,
// which rtnl does not model.
func compareAddress(t *testing.T, what string, r *rtnl.AddressMessage, j *rtnetlink.AddressMessage, ifaFlagsSent bool) {
	t.Helper()
	c := fieldChecker{t, what}
	c.eq("family", r.Family, j.Family)
	c.eq("prefixlen", r.PrefixLen, j.PrefixLength)
	c.eq("scope", uint8(r.Scope), j.Scope)
	c.eq("index", uint32(r.Index), j.Index)
	a := j.Attributes
	if a == nil {
		a = &rtnetlink.AddressAttributes{}
	}
	if ifaFlagsSent {
		c.eq("IFA_FLAGS", uint32(r.Flags), a.Flags)
	} else {
		c.eq("ifa_flags", uint8(r.Flags), j.Flags)
		c.eq("IFA_FLAGS absent", a.Flags, uint32(0))
	}
	c.eq("address", r.Address, jsIP(a.Address))
	c.eq("local", r.Local, jsIP(a.Local))
	c.eq("broadcast", r.Broadcast, jsIP(a.Broadcast))
	c.eq("label", r.Label, a.Label)
	c.eq("cacheinfo", r.CacheInfo, rtnl.AddrCacheInfo{Preferred: a.CacheInfo.Prefered,
		Valid: a.CacheInfo.Valid, Created: a.CacheInfo.Created, Updated: a.CacheInfo.Updated})
}

func TestDiffAddressRtnlToJsimonetti(t *testing.T) {
	v4 := rtnl.NewAddress(2, netip.MustParsePrefix("198.51.100.1/24"))
	v4.Label, v4.Broadcast = "br0", netip.MustParseAddr("198.51.100.255")
	v6 := rtnl.NewAddress(5, netip.MustParsePrefix("2001:db8::1/64"))
	v6.Flags = rtnl.AddrNoDAD | rtnl.AddrPermanent
	wide := rtnl.NewAddress(5, netip.MustParsePrefix("203.0.113.7/32"))
	wide.Flags, wide.Scope = rtnl.AddrNoPrefixRoute|rtnl.AddrPermanent, rtnl.ScopeHost // > 0xff: IFA_FLAGS
	life := rtnl.NewAddress(3, netip.MustParsePrefix("10.1.2.3/8"))
	life.CacheInfo = rtnl.AddrCacheInfo{Preferred: 100, Valid: 200}
	peer := &rtnl.AddressMessage{Family: rtnl.FamilyInet, PrefixLen: 32, Index: 6,
		Local: netip.MustParseAddr("10.0.0.1"), Address: netip.MustParseAddr("10.0.0.2")}
	for _, tc := range []struct {
		name string
		m    *rtnl.AddressMessage
	}{{"v4", v4}, {"v6", v6}, {"wide flags", wide}, {"lifetimes", life}, {"peer", peer}} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var j rtnetlink.AddressMessage
			if err := j.UnmarshalBinary(b); err != nil {
				t.Fatalf("jsimonetti decode: %v", err)
			}
			compareAddress(t, tc.name, tc.m, &j, tc.m.Flags > 0xff)
		})
	}
}

func TestDiffAddressJsimonettiToRtnl(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    rtnetlink.AddressMessage
	}{
		{"v4", rtnetlink.AddressMessage{Family: rtnl.FamilyInet, PrefixLength: 24, Index: 2, Flags: rtnl.IFA_F_PERMANENT,
			Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP("198.51.100.1").To4(), Local: net.ParseIP("198.51.100.1").To4(),
				Broadcast: net.ParseIP("198.51.100.255").To4(), Label: "br0", Flags: rtnl.IFA_F_PERMANENT}}},
		{"v6", rtnetlink.AddressMessage{Family: rtnl.FamilyInet6, PrefixLength: 64, Index: 5, Scope: rtnl.RT_SCOPE_LINK,
			Flags: rtnl.IFA_F_NODAD, Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP("fe80::42:c6ff:fe33:6402"),
				Flags: rtnl.IFA_F_NODAD | rtnl.IFA_F_NOPREFIXROUTE}}},
		{"v4 no local", rtnetlink.AddressMessage{Family: rtnl.FamilyInet, PrefixLength: 16, Index: 9,
			Attributes: &rtnetlink.AddressAttributes{Address: net.ParseIP("10.9.0.1").To4()}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var r rtnl.AddressMessage
			if err := r.UnmarshalBinary(b); err != nil {
				t.Fatalf("rtnl decode: %v", err)
			}
			compareAddress(t, tc.name, &r, &tc.m, true) // jsimonetti always sends IFA_FLAGS
		})
	}
}

// ---- captured kernel messages through both decoders ----

func TestDiffKernelMessages(t *testing.T) {
	for _, name := range []string{"l3miss", "l3miss_v6", "l2miss", "app_solicit", "app_solicit_probe", "fdb_echo"} {
		t.Run(name, func(t *testing.T) {
			_, body, _ := readKernelMessage(t, name)
			var r rtnl.NeighMessage
			var j rtnetlink.NeighMessage
			if err := r.UnmarshalBinary(body); err != nil {
				t.Fatalf("rtnl: %v", err)
			}
			if err := j.UnmarshalBinary(body); err != nil {
				t.Fatalf("jsimonetti: %v", err)
			}
			compareNeigh(t, name, &r, &j, true)
		})
	}
	for _, name := range []string{"link_vxlan", "link_veth"} {
		t.Run(name, func(t *testing.T) {
			_, body, _ := readKernelMessage(t, name)
			var r rtnl.LinkMessage
			var j rtnetlink.LinkMessage
			if err := r.UnmarshalBinary(body); err != nil {
				t.Fatalf("rtnl: %v", err)
			}
			if err := j.UnmarshalBinary(body); err != nil {
				t.Fatalf("jsimonetti: %v", err)
			}
			compareLink(t, name, &r, &j)
		})
	}
	t.Run("addr_v4", func(t *testing.T) {
		_, body, _ := readKernelMessage(t, "addr_v4")
		var r rtnl.AddressMessage
		var j rtnetlink.AddressMessage
		if err := r.UnmarshalBinary(body); err != nil {
			t.Fatalf("rtnl: %v", err)
		}
		if err := j.UnmarshalBinary(body); err != nil {
			t.Fatalf("jsimonetti: %v", err)
		}
		compareAddress(t, "addr_v4", &r, &j, true)
	})
	t.Run("route_default", func(t *testing.T) {
		_, body, _ := readKernelMessage(t, "route_default")
		var r rtnl.RouteMessage
		var j rtnetlink.RouteMessage
		if err := r.UnmarshalBinary(body); err != nil {
			t.Fatalf("rtnl: %v", err)
		}
		if err := j.UnmarshalBinary(body); err != nil {
			t.Fatalf("jsimonetti: %v", err)
		}
		c := fieldChecker{t, "route_default"}
		c.eq("family", r.Family, j.Family)
		c.eq("dst_len", r.DstLen, j.DstLength)
		c.eq("table", r.Table, j.Attributes.Table)
		c.eq("rtm_table", uint8(r.Table), j.Table)
		c.eq("protocol", uint8(r.Protocol), j.Protocol)
		c.eq("scope", uint8(r.Scope), j.Scope)
		c.eq("type", uint8(r.Type), j.Type)
		c.eq("flags", r.Flags, j.Flags)
		c.eq("dst", r.Dst, jsIP(j.Attributes.Dst))
		c.eq("gateway", r.Gateway, jsIP(j.Attributes.Gateway))
		c.eq("oif", uint32(r.OIF), j.Attributes.OutIface)
		c.eq("priority", r.Priority, j.Attributes.Priority)
	})
}
