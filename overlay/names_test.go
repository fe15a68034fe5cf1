package overlay

import (
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

func TestDeriveMAC(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"198.51.100.2", "02:42:c6:33:64:02"},
		{"12.12.12.2", "02:42:0c:0c:0c:02"},
		{"192.168.0.2", "02:42:c0:a8:00:02"},
		{"::ffff:10.0.0.1", "02:42:0a:00:00:01"},
	} {
		got := DeriveMAC(netip.MustParseAddr(tc.ip))
		if got.String() != tc.want {
			t.Errorf("DeriveMAC(%s) = %s, want %s", tc.ip, got, tc.want)
		}
		if err := registry.ValidateMAC(ethaddr.MAC(got)); err != nil {
			t.Errorf("DeriveMAC(%s) = %s: %v", tc.ip, got, err)
		}
	}
	v6 := DeriveMAC(netip.MustParseAddr("2001:db8::1"))
	if v6[0] != 0x02 || v6[1] != 0x42 || registry.ValidateMAC(ethaddr.MAC(v6)) != nil {
		t.Errorf("DeriveMAC(2001:db8::1) = %s, want a unicast 02:42:... MAC", v6)
	}
}

func TestHostIfName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"pinkns", "ve-pinkns"},
		{"abcdefghijkl", "ve-abcdefghijkl"}, // exactly 15 bytes
	} {
		if got := HostIfName(tc.name); got != tc.want {
			t.Errorf("HostIfName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	seen := map[string]string{}
	for _, name := range []string{
		"abcdefghijklm", "abcdefghijkln", "a-very-long-container-name", "with:colon", "sp ace",
		"x0123456789012345678901234567890",
	} {
		got := HostIfName(name)
		if err := validateIfName("veth", got); err != nil {
			t.Errorf("HostIfName(%q) = %q: %v", name, got, err)
		}
		if prev, dup := seen[got]; dup {
			t.Errorf("HostIfName(%q) = HostIfName(%q) = %q", name, prev, got)
		}
		seen[got] = name
		if HostIfName(name) != got {
			t.Errorf("HostIfName(%q) is not deterministic", name)
		}
	}
}
