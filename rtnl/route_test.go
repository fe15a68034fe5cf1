package rtnl_test

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

func TestRouteMessageRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		m    rtnl.RouteMessage
	}{
		{"empty", rtnl.RouteMessage{}},
		{"default via", *rtnl.NewDefaultRoute(netip.MustParseAddr("198.51.100.1"))},
		{"device route", *rtnl.NewDeviceRoute(netip.MustParsePrefix("203.0.113.0/24"), 4)},
		{"v6 via", *rtnl.NewRoute(netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParseAddr("2001:db8::1"), 2)},
		{"big table and all attributes", rtnl.RouteMessage{
			Family: rtnl.FamilyInet, DstLen: 24, SrcLen: 8, TOS: 4, Protocol: rtnl.ProtoKernel, Scope: rtnl.ScopeLink,
			Type: rtnl.RouteUnicast, Flags: rtnl.RTM_F_CLONED, Table: 1000,
			Dst: netip.MustParseAddr("198.51.100.0"), Src: netip.MustParseAddr("10.0.0.0"),
			Gateway: netip.MustParseAddr("192.0.2.1"), PrefSrc: netip.MustParseAddr("192.0.2.2"),
			OIF: 3, IIF: 4, Priority: 100,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			var got rtnl.RouteMessage
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("round trip\n got %+v\nwant %+v", got, tt.m)
			}
			for i := 0; i < len(b); i++ {
				var m rtnl.RouteMessage
				if err := m.UnmarshalBinary(b[:i]); i < rtnl.SizeofRtMsg && err == nil {
					t.Errorf("%d bytes accepted", i)
				}
			}
		})
	}
}

func TestRouteHelpers(t *testing.T) {
	gw := netip.MustParseAddr("198.51.100.1")
	tests := []struct {
		name string
		got  *rtnl.RouteMessage
		want rtnl.RouteMessage
		dest netip.Prefix
	}{{
		"default", rtnl.NewDefaultRoute(gw),
		rtnl.RouteMessage{Family: rtnl.FamilyInet, Protocol: rtnl.ProtoStatic, Type: rtnl.RouteUnicast,
			Table: rtnl.RouteTableMain, Gateway: gw},
		netip.MustParsePrefix("0.0.0.0/0"),
	}, {
		"device", rtnl.NewDeviceRoute(netip.MustParsePrefix("203.0.113.7/24"), 4),
		rtnl.RouteMessage{Family: rtnl.FamilyInet, DstLen: 24, Protocol: rtnl.ProtoStatic, Type: rtnl.RouteUnicast,
			Scope: rtnl.ScopeLink, Table: rtnl.RouteTableMain, Dst: netip.MustParseAddr("203.0.113.0"), OIF: 4},
		netip.MustParsePrefix("203.0.113.0/24"),
	}, {
		"v6 default", rtnl.NewDefaultRoute(netip.MustParseAddr("2001:db8::1")),
		rtnl.RouteMessage{Family: rtnl.FamilyInet6, Protocol: rtnl.ProtoStatic, Type: rtnl.RouteUnicast,
			Table: rtnl.RouteTableMain, Gateway: netip.MustParseAddr("2001:db8::1")},
		netip.MustParsePrefix("::/0"),
	}}
	for _, tt := range tests {
		if *tt.got != tt.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.name, *tt.got, tt.want)
		}
		check(t, tt.name+" Destination", tt.got.Destination(), tt.dest)
	}
	// RTA_TABLE is sent only above 255; rtm_table carries the rest.
	b, _ := (&rtnl.RouteMessage{Table: rtnl.RouteTableMain}).MarshalBinary()
	check(t, "rtm_table", b[4], rtnl.RouteTableMain)
	check(t, "no attributes", len(b), rtnl.SizeofRtMsg)
	b, _ = (&rtnl.RouteMessage{Table: 300}).MarshalBinary()
	check(t, "rtm_table for 300", b[4], rtnl.RT_TABLE_UNSPEC)

	bad := append(make([]byte, rtnl.SizeofRtMsg), 6, 0, rtnl.RTA_OIF, 0, 1, 2, 0, 0)
	var m rtnl.RouteMessage
	if err := m.UnmarshalBinary(bad); err == nil {
		t.Errorf("2-byte RTA_OIF accepted")
	}
	for _, tt := range []struct{ got, want string }{
		{rtnl.ProtoStatic.String(), "static"},
		{rtnl.RouteProtocol(99).String(), "RouteProtocol(99)"},
		{rtnl.RouteUnicast.String(), "unicast"},
		{rtnl.RouteType(200).String(), "RouteType(200)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
