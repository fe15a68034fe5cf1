package registry

import (
	"net/netip"
	"testing"
	"unsafe"
)

func TestCompactAddr(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"0.0.0.0", "0.0.0.0"},
		{"2001:db8::1", "2001:db8::1"},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.7"}, // stays IPv6, not unmapped
		{"fe80::1%eth0", "fe80::1"},              // the zone is dropped
	} {
		got := Compact(netip.MustParseAddr(tc.in)).Addr()
		if got != netip.MustParseAddr(tc.want) {
			t.Errorf("Compact(%s).Addr() = %s, want %s", tc.in, got, tc.want)
		}
	}
	if Compact(netip.MustParseAddr("192.0.2.7")) == Compact(netip.MustParseAddr("::ffff:192.0.2.7")) {
		t.Error("an IPv4 address and its IPv4-mapped IPv6 form compact to the same key")
	}
	if n := unsafe.Sizeof(CompactAddr{}); n != 17 {
		t.Errorf("CompactAddr is %d bytes, want 17", n)
	}
}
