package rtnl_test

import (
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

// TestDecodeInet6DevConf: the kernel's IFLA_INET6_CONF array is read
// beside the IPv4 one (AF_INET6 before or after AF_INET), index d holding
// setting d; a setting past the array's end is one the kernel lacks; odd
// sizes and a nested form (no kernel sends one) are errors.
func TestDecodeInet6DevConf(t *testing.T) {
	ifi := make([]byte, 16)
	ne := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	array := make([]byte, 0, 4*60)
	for i := range uint32(60) {
		array = append(array, ne(i*10)...)
	}
	n := uint16(len(array))
	inet := rawAttr(rtnl.FamilyInet, 4+4+8, rawAttr(rtnl.IFLA_INET_CONF, 4+8, catBytes(ne(1), ne(0))...)...)
	inet6 := rawAttr(rtnl.FamilyInet6, 4+8+4+n, catBytes(rawAttr(1, 8, ne(0x80000000)...), rawAttr(rtnl.IFLA_INET6_CONF, 4+n, array...))...)
	short := rawAttr(rtnl.FamilyInet6, 4+4+8, rawAttr(rtnl.IFLA_INET6_CONF, 4+8, catBytes(ne(1), ne(64))...)...)
	spec := func(parts ...[]byte) []byte {
		body := catBytes(parts...)
		return rawAttr(rtnl.IFLA_AF_SPEC, uint16(4+len(body)), body...)
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		first   []uint32 // the first values
		n       int
		err     string
		errNone bool
	}{
		{"after AF_INET", catBytes(ifi, rawAttr(rtnl.IFLA_MTU, 8, ne(1500)...), spec(inet, inet6)), []uint32{0, 10, 20}, 60, "", false},
		{"before AF_INET", catBytes(ifi, spec(inet6, inet)), []uint32{0, 10, 20}, 60, "", false},
		{"older kernel", catBytes(ifi, spec(short)), []uint32{1, 64}, 2, "", false},
		{"short ifinfomsg", ifi[:10], nil, 0, "shorter than struct ifinfomsg", false},
		{"IPv4 only", catBytes(ifi, spec(inet)), nil, 0, "no IPv6 device settings", true},
		{"no AF_SPEC", catBytes(ifi, rawAttr(rtnl.IFLA_MTU, 8, ne(1500)...)), nil, 0, "no IPv6 device settings", true},
		{"odd array", catBytes(ifi, spec(rawAttr(rtnl.FamilyInet6, 4+4+3, rawAttr(rtnl.IFLA_INET6_CONF, 7, 1, 2, 3)...))), nil, 0, "not a u32 array", false},
		{"nested", catBytes(ifi, spec(rawAttr(rtnl.FamilyInet6, 4+4+8, rawAttr(rtnl.IFLA_INET6_CONF|rtnl.AttrNested, 4+8, rawAttr(1, 8, ne(1)...)...)...))), nil, 0, "nested", false},
		{"truncated AF_INET6", catBytes(ifi, spec(rawAttr(rtnl.FamilyInet6, 4+8, rawAttr(rtnl.IFLA_INET6_CONF, 40, 1, 2, 3, 4)...))), nil, 0, "AF_INET6", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rtnl.DecodeInet6DevConf(tc.b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || errors.Is(err, rtnl.ErrNoInet6Conf) != tc.errNone {
					t.Fatalf("err %v, want %q (ErrNoInet6Conf %v)", err, tc.err, tc.errNone)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Values) != tc.n || !reflect.DeepEqual(c.Values[:len(tc.first)], tc.first) {
				t.Fatalf("values %v, want %d starting %v", c.Values, tc.n, tc.first)
			}
			ff, ok := c.Get(rtnl.DevConf6ForceForwarding)
			if ok != (tc.n == 60) || ok && ff != 590 {
				t.Errorf("force_forwarding %d %v", ff, ok)
			}
			if v, ok := c.Get(rtnl.DevConf6HopLimit); !ok || v != c.Values[1] {
				t.Errorf("hop_limit %d %v", v, ok)
			}
		})
	}
}

// TestDecodeInet6DevConfKernel: the captured link of the golden files
// carries the IPv6 settings of the kernel it was captured on.
func TestDecodeInet6DevConfKernel(t *testing.T) {
	_, body, _ := readKernelMessage(t, "link_veth")
	c, err := rtnl.DecodeInet6DevConf(body)
	if err != nil {
		t.Fatal(err)
	}
	hl, ok := c.Get(rtnl.DevConf6HopLimit)
	if !ok || hl != 64 || len(c.Values) <= int(rtnl.DevConf6AddrGenMode) {
		t.Errorf("hop_limit %d %v, %d settings", hl, ok, len(c.Values))
	}
}

func TestDevConf6String(t *testing.T) {
	for d, want := range map[rtnl.DevConf6]string{
		rtnl.DevConf6Forwarding: "forwarding", rtnl.DevConf6ForceForwarding: "force_forwarding",
		rtnl.DevConf6AcceptRA: "accept_ra", 99: "devconf6(99)",
	} {
		if got := d.String(); got != want {
			t.Errorf("%d: %q, want %q", d, got, want)
		}
	}
}

func FuzzInet6DevConf(f *testing.F) {
	seedKernel(f, "link_veth", "link_vxlan")
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := rtnl.DecodeInet6DevConf(b)
		if err != nil {
			if len(c.Values) != 0 {
				t.Fatalf("values %v beside error %v", c.Values, err)
			}
			return
		}
		for d := rtnl.DevConf6(0); d < 70; d++ {
			if v, ok := c.Get(d); ok != (int(d) < len(c.Values)) || ok && v != c.Values[d] {
				t.Fatalf("Get(%d) = %d, %v with %d values", d, v, ok, len(c.Values))
			}
		}
	})
}
