package rtnl_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

func TestEncodeLinkInetConf(t *testing.T) {
	b, err := rtnl.EncodeLinkInetConf(nil, 7,
		rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: 1},
		rtnl.DevConfValue{Conf: rtnl.DevConfRPFilter, Value: 2})
	if err != nil {
		t.Fatal(err)
	}
	ne := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	want := catBytes(
		[]byte{rtnl.FamilyUnspec, 0, 0, 0}, ne(7), ne(0), ne(0), // ifinfomsg, index 7
		rawAttr(rtnl.IFLA_AF_SPEC|rtnl.AttrNested, 28), // IFLA_AF_SPEC, nested, 28 bytes
		rawAttr(rtnl.FamilyInet|rtnl.AttrNested, 24),   // AF_INET, nested
		rawAttr(rtnl.IFLA_INET_CONF|rtnl.AttrNested, 20),
		rawAttr(1, 8), ne(1), // forwarding = 1
		rawAttr(8, 8), ne(2), // rp_filter = 2
	)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding:\n got % x\nwant % x", b, want)
	}
	// The decoder reads a request's nested form back.
	c, err := rtnl.DecodeInetDevConf(b)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := c.Get(rtnl.DevConfForwarding); !ok || v != 1 {
		t.Errorf("forwarding %d %v", v, ok)
	}
	if v, ok := c.Get(rtnl.DevConfRPFilter); !ok || v != 2 {
		t.Errorf("rp_filter %d %v", v, ok)
	}
	if _, ok := c.Get(rtnl.DevConfARPIgnore); ok {
		t.Error("arp_ignore reported though not sent")
	}
}

func TestEncodeLinkInetConfBadInput(t *testing.T) {
	for _, tc := range []struct {
		name  string
		index int32
		vals  []rtnl.DevConfValue
		want  string
	}{
		{"no index", 0, []rtnl.DevConfValue{{Conf: rtnl.DevConfForwarding, Value: 1}}, "need a device index"},
		{"nothing", 3, nil, "no IPv4 setting"},
		{"setting 0", 3, []rtnl.DevConfValue{{Conf: 0, Value: 1}}, "out of range"},
		{"setting 65", 3, []rtnl.DevConfValue{{Conf: 65, Value: 1}}, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := rtnl.EncodeLinkInetConf([]byte{9}, tc.index, tc.vals...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if !bytes.Equal(b, []byte{9}) {
				t.Errorf("buffer changed on error: % x", b)
			}
		})
	}
}

func TestDecodeInetDevConf(t *testing.T) {
	ifi := make([]byte, 16)
	ne := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	array := catBytes(ne(1), ne(0), ne(0), ne(1)) // forwarding 1, ..., accept_redirects 1
	n := uint16(len(array))
	kernel := catBytes(ifi,
		rawAttr(rtnl.IFLA_MTU, 8, ne(1500)...),
		rawAttr(rtnl.IFLA_AF_SPEC, 4+4+4+n+8,
			catBytes(rawAttr(rtnl.FamilyInet6, 8, 1, 2, 3, 4), rawAttr(rtnl.FamilyInet, 8+n, rawAttr(rtnl.IFLA_INET_CONF, 4+n, array...)...))...))
	for _, tc := range []struct {
		name string
		b    []byte
		want []uint32
		err  string
	}{
		{"kernel array", kernel, []uint32{1, 0, 0, 1}, ""},
		{"short", ifi[:8], nil, "shorter than struct ifinfomsg"},
		{"no AF_SPEC", catBytes(ifi, rawAttr(rtnl.IFLA_MTU, 8, ne(1500)...)), nil, "no IPv4 device settings"},
		{"odd array", catBytes(ifi, rawAttr(rtnl.IFLA_AF_SPEC, 4+4+4+3, catBytes(rawAttr(rtnl.FamilyInet, 4+4+3, rawAttr(rtnl.IFLA_INET_CONF, 7, 1, 2, 3)...))...)), nil, "not a u32 array"},
		{"nested setting 0", catBytes(ifi, rawAttr(rtnl.IFLA_AF_SPEC, 4+4+4+8, rawAttr(rtnl.FamilyInet, 4+4+8, rawAttr(rtnl.IFLA_INET_CONF|rtnl.AttrNested, 4+8, rawAttr(0, 8, ne(1)...)...)...)...)), nil, "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := rtnl.DecodeInetDevConf(tc.b)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c.Values, tc.want) {
				t.Errorf("values %v, want %v", c.Values, tc.want)
			}
		})
	}
	if _, err := rtnl.DecodeInetDevConf(catBytes(ifi)); !errors.Is(err, rtnl.ErrNoInetConf) {
		t.Errorf("err %v, want ErrNoInetConf", err)
	}
}

func TestDevConfString(t *testing.T) {
	for d, want := range map[rtnl.DevConf]string{
		rtnl.DevConfForwarding: "forwarding", rtnl.DevConfRPFilter: "rp_filter", 99: "devconf(99)",
	} {
		if got := d.String(); got != want {
			t.Errorf("%d: %q, want %q", d, got, want)
		}
	}
}

func FuzzInetDevConf(f *testing.F) {
	seedKernel(f, "link_veth", "link_vxlan")
	b, _ := rtnl.EncodeLinkInetConf(nil, 3, rtnl.DevConfValue{Conf: rtnl.DevConfForwarding, Value: 1})
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := rtnl.DecodeInetDevConf(b)
		if err != nil {
			return
		}
		for d := rtnl.DevConf(0); d < 70; d++ {
			c.Get(d)
		}
	})
}

func TestEncodeLinkAddrGenMode(t *testing.T) {
	b, err := rtnl.EncodeLinkAddrGenMode(nil, 9, rtnl.AddrGenNone)
	if err != nil {
		t.Fatal(err)
	}
	ne := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	want := catBytes(
		[]byte{rtnl.FamilyUnspec, 0, 0, 0}, ne(9), ne(0), ne(0), // ifinfomsg, index 9
		rawAttr(rtnl.IFLA_AF_SPEC|rtnl.AttrNested, 16), // IFLA_AF_SPEC, nested
		rawAttr(rtnl.FamilyInet6|rtnl.AttrNested, 12),  // AF_INET6, nested
		rawAttr(8, 5), []byte{1, 0, 0, 0}, // IFLA_INET6_ADDR_GEN_MODE = none, padded
	)
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding:\n got % x\nwant % x", b, want)
	}
	for _, c := range []struct {
		index int32
		mode  rtnl.AddrGenMode
		want  string
	}{{0, rtnl.AddrGenNone, "device index"}, {3, 4, "unknown addrgenmode(4)"}} {
		if _, err := rtnl.EncodeLinkAddrGenMode(nil, c.index, c.mode); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("EncodeLinkAddrGenMode(%d, %d) = %v, want %q", c.index, c.mode, err, c.want)
		}
	}
	if rtnl.AddrGenNone.String() != "none" || rtnl.AddrGenEUI64.String() != "eui64" {
		t.Errorf("names %s %s", rtnl.AddrGenNone, rtnl.AddrGenEUI64)
	}
}
