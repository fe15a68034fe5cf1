package rtnl_test

import (
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

func TestHardwareAddrString(t *testing.T) {
	if got := (rtnl.HardwareAddr{2, 0x42, 0xc6, 0x33, 0x64, 2, 0xab}).String(); got != "02:42:c6:33:64:02:ab" {
		t.Errorf("HardwareAddr.String = %q", got)
	}
	if got := rtnl.HardwareAddr(nil).String(); got != "" {
		t.Errorf("empty HardwareAddr.String = %q", got)
	}
}
