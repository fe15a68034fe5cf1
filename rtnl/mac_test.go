package rtnl_test

import (
	"net"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

// TestParseMAC checks rtnl's own parser against net.ParseMAC on EUI-48
// strings (rtnl does not import net; the test may).
func TestParseMAC(t *testing.T) {
	for _, s := range []string{
		"02:42:c6:33:64:02", "02-42-C6-33-64-0A", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00",
		"", "02:42:c6:33:64", "02:42:c6:33:64:0", "02:42:c6:33:64:022", "02:42-c6:33:64:02",
		"02.42.c6.33.64.02", "0242.c633.6402", "g2:42:c6:33:64:02", "02:42:c6:33:64:02:00:00",
	} {
		want, werr := net.ParseMAC(s)
		if werr == nil && len(want) != 6 {
			werr = net.InvalidAddrError("not EUI-48")
		}
		if s == "0242.c633.6402" || s == "02.42.c6.33.64.02" {
			werr = net.InvalidAddrError("dotted forms are not accepted") // net accepts one; we do not
		}
		got, err := rtnl.ParseMAC(s)
		if (err != nil) != (werr != nil) {
			t.Errorf("ParseMAC(%q): err %v, want error %v", s, err, werr != nil)
			continue
		}
		if err == nil && got.String() != want.String() {
			t.Errorf("ParseMAC(%q) = %s, want %s", s, got, want)
		}
	}
	if got := (rtnl.HardwareAddr{2, 0x42, 0xc6, 0x33, 0x64, 2, 0xab}).String(); got != "02:42:c6:33:64:02:ab" {
		t.Errorf("HardwareAddr.String = %q", got)
	}
	if got := rtnl.HardwareAddr(nil).String(); got != "" {
		t.Errorf("empty HardwareAddr.String = %q", got)
	}
}
