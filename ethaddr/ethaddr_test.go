package ethaddr_test

import (
	"encoding/json"
	"net"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// TestParse checks the parser against net.ParseMAC on EUI-48 strings
// (ethaddr does not import net; the test may).
func TestParse(t *testing.T) {
	for _, s := range []string{
		"02:42:c6:33:64:02", "02-42-C6-33-64-0A", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00",
		"", "02:42:c6:33:64", "02:42:c6:33:64:0", "02:42:c6:33:64:022", "02:42-c6:33:64:02",
		"02.42.c6.33.64.02", "0242.c633.6402", "g2:42:c6:33:64:02", "02:42:c6:33:64:02:00:00",
		"02:42:c6:33:64:0g",
	} {
		want, werr := net.ParseMAC(s)
		if werr == nil && len(want) != 6 {
			werr = net.InvalidAddrError("not EUI-48")
		}
		if s == "0242.c633.6402" || s == "02.42.c6.33.64.02" {
			werr = net.InvalidAddrError("dotted forms are not accepted") // net accepts one; we do not
		}
		got, err := ethaddr.Parse(s)
		if (err != nil) != (werr != nil) {
			t.Errorf("Parse(%q): err %v, want error %v", s, err, werr != nil)
			continue
		}
		if err == nil && got.String() != want.String() {
			t.Errorf("Parse(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestPredicates(t *testing.T) {
	for _, tt := range []struct {
		mac                    string
		zero, multicast, unica bool
	}{
		{"00:00:00:00:00:00", true, false, false},
		{"02:42:c6:33:64:02", false, false, true},
		{"03:42:c6:33:64:02", false, true, false},
		{"ff:ff:ff:ff:ff:ff", false, true, false},
	} {
		m, err := ethaddr.Parse(tt.mac)
		if err != nil {
			t.Fatal(err)
		}
		if m.IsZero() != tt.zero || m.IsMulticast() != tt.multicast || m.IsUnicast() != tt.unica {
			t.Errorf("%s: zero %v multicast %v unicast %v", m, m.IsZero(), m.IsMulticast(), m.IsUnicast())
		}
	}
}

func TestText(t *testing.T) {
	m := ethaddr.MAC{2, 0x42, 0xc6, 0x33, 0x64, 0x0a}
	b, err := json.Marshal(struct{ M ethaddr.MAC }{m})
	if err != nil || string(b) != `{"M":"02:42:c6:33:64:0a"}` {
		t.Fatalf("json: %s, %v", b, err)
	}
	var back struct{ M ethaddr.MAC }
	if err := json.Unmarshal([]byte(`{"M":"02-42-C6-33-64-0A"}`), &back); err != nil || back.M != m {
		t.Fatalf("json back: %v, %v", back.M, err)
	}
	if err := json.Unmarshal([]byte(`{"M":"02:42"}`), &back); err == nil {
		t.Fatal("json accepted a short MAC")
	}
	if got := testing.AllocsPerRun(100, func() { _, _ = m.AppendText(make([]byte, 0, 32)) }); got > 1 {
		t.Errorf("AppendText allocates %v times", got)
	}
}
