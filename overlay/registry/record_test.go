package registry

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
)

func TestRecordJSON(t *testing.T) {
	r := Record{IP: netip.MustParseAddr("198.51.100.2"), MAC: ethaddr.MAC{2, 0x42, 198, 51, 100, 2}, VTEP: netip.MustParseAddr("192.0.2.2")}
	b, err := json.Marshal(r)
	if err != nil || string(b) != `{"ip":"198.51.100.2","mac":"02:42:c6:33:64:02","vtep":"192.0.2.2"}` {
		t.Fatalf("json: %s, %v", b, err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil || back != r {
		t.Fatalf("json round trip: %+v, %v", back, err)
	}
}

func TestRecordValidate(t *testing.T) {
	ok := Record{IP: netip.MustParseAddr("198.51.100.2"), MAC: ethaddr.MAC{2, 0x42, 198, 51, 100, 2}, VTEP: netip.MustParseAddr("192.0.2.2")}
	tests := []struct {
		name string
		mod  func(*Record)
		err  string
	}{
		{"valid", func(*Record) {}, ""},
		{"no IP", func(r *Record) { r.IP = netip.Addr{} }, "no IP"},
		{"zero MAC", func(r *Record) { r.MAC = ethaddr.MAC{} }, "all zeros"},
		{"multicast MAC", func(r *Record) { r.MAC[0] = 1 }, "multicast"},
		{"no VTEP", func(r *Record) { r.VTEP = netip.Addr{} }, "no VTEP"},
	}
	for _, tt := range tests {
		r := ok
		tt.mod(&r)
		err := r.Validate()
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("%s: Validate() = %v, want %q", tt.name, err, tt.err)
		}
	}
}
