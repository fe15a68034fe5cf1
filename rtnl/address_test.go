package rtnl_test

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

func addressCodecCases() []struct {
	name string
	m    rtnl.AddressMessage
} {
	return []struct {
		name string
		m    rtnl.AddressMessage
	}{
		{"empty", rtnl.AddressMessage{}},
		{"ipv4 as ip addr add", *rtnl.NewAddress(3, netip.MustParsePrefix("198.51.100.1/24"))},
		{"ipv4 full", rtnl.AddressMessage{
			Family: rtnl.FamilyInet, PrefixLen: 24, Flags: rtnl.AddrPermanent, Scope: rtnl.ScopeUniverse, Index: 3,
			Address: netip.MustParseAddr("198.51.100.1"), Local: netip.MustParseAddr("198.51.100.1"),
			Broadcast: netip.MustParseAddr("198.51.100.255"), Label: "br0:gw",
			CacheInfo: rtnl.AddrCacheInfo{Preferred: 0xffffffff, Valid: 0xffffffff, Created: 100, Updated: 200},
		}},
		{"ipv6 wide flags", rtnl.AddressMessage{
			Family: rtnl.FamilyInet6, PrefixLen: 64, Flags: rtnl.AddrPermanent | rtnl.AddrNoPrefixRoute | rtnl.AddrNoDAD,
			Scope: rtnl.ScopeLink, Index: 9, Address: netip.MustParseAddr("fe80::42"),
		}},
	}
}

func TestAddressMessageRoundTrip(t *testing.T) {
	for _, tt := range addressCodecCases() {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.MarshalBinary()
			if err != nil {
				t.Fatalf("MarshalBinary: %v", err)
			}
			var got rtnl.AddressMessage
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary: %v", err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("round trip\n got %+v\nwant %+v", got, tt.m)
			}
			for i := 0; i < len(b); i++ {
				var m rtnl.AddressMessage
				if err := m.UnmarshalBinary(b[:i]); i < rtnl.SizeofIfAddrmsg && err == nil {
					t.Errorf("%d bytes accepted", i)
				}
			}
		})
	}
}

func TestAddressMessageHelpers(t *testing.T) {
	m := rtnl.NewAddress(5, netip.MustParsePrefix("198.51.100.2/24"))
	want := rtnl.AddressMessage{Family: rtnl.FamilyInet, PrefixLen: 24, Index: 5,
		Address: netip.MustParseAddr("198.51.100.2"), Local: netip.MustParseAddr("198.51.100.2")}
	if *m != want {
		t.Errorf("NewAddress = %+v, want %+v", *m, want)
	}
	check(t, "Prefix", m.Prefix(), netip.MustParsePrefix("198.51.100.2/24"))
	m6 := rtnl.NewAddress(5, netip.MustParsePrefix("2001:db8::2/64"))
	check(t, "v6 family", m6.Family, rtnl.FamilyInet6)
	// The kernel reports IPv6 addresses in IFA_ADDRESS only.
	v6 := rtnl.AddressMessage{PrefixLen: 64, Address: netip.MustParseAddr("2001:db8::2")}
	check(t, "v6 Prefix", v6.Prefix(), netip.MustParsePrefix("2001:db8::2/64"))
	check(t, "mapped", rtnl.NewAddress(1, netip.MustParsePrefix("::ffff:192.0.2.1/120")).Local, netip.MustParseAddr("192.0.2.1"))
	check(t, "empty Prefix", (&rtnl.AddressMessage{}).Prefix(), netip.Prefix{})

	if _, err := (&rtnl.AddressMessage{Label: "a-label-too-long"}).MarshalBinary(); err == nil {
		t.Error("16-byte label accepted")
	}
	bad := [][]byte{
		catBytes(make([]byte, rtnl.SizeofIfAddrmsg), rawAttr(rtnl.IFA_ADDRESS, 7, 1, 2, 3, 0)),
		catBytes(make([]byte, rtnl.SizeofIfAddrmsg), rawAttr(rtnl.IFA_CACHEINFO, 8, 1, 2, 3, 4)),
		catBytes(make([]byte, rtnl.SizeofIfAddrmsg), rawAttr(rtnl.IFA_FLAGS, 6, 1, 2, 0, 0)),
	}
	for i, b := range bad {
		var m rtnl.AddressMessage
		if err := m.UnmarshalBinary(b); err == nil {
			t.Errorf("bad message %d accepted: %+v", i, m)
		}
	}
	for _, tt := range []struct{ got, want string }{
		{rtnl.ScopeLink.String(), "link"},
		{rtnl.ScopeUniverse.String(), "global"},
		{rtnl.Scope(7).String(), "Scope(7)"},
		{(rtnl.AddrPermanent | rtnl.AddrNoPrefixRoute).String(), "permanent|noprefixroute"},
		{rtnl.AddrFlags(0).String(), "0"},
		{rtnl.AddrFlags(1 << 20).String(), "0x100000"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
