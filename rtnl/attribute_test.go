package rtnl_test

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

func TestAttributeEncoderLayout(t *testing.T) {
	var ae rtnl.AttributeEncoder
	ae.Uint8(1, 7)
	ae.Uint16BE(6, 4790)
	ae.Uint32(7, 42)
	ae.String(3, "br0")
	n := ae.Begin(18)
	ae.String(1, "vxlan")
	ae.End(n)
	// Headers and integers in host byte order (rawAttr, ne32): the same
	// layout on little- and big-endian machines, only the byte order of
	// those fields differs.
	want := catBytes(
		rawAttr(1, 5, 7, 0, 0, 0),       // u8 padded to 8
		rawAttr(6, 6, 0x12, 0xb6, 0, 0), // big-endian port 4790 on every machine
		rawAttr(7, 8, ne32(42)...),      // host-order u32
		rawAttr(3, 8, 'b', 'r', '0', 0), // NUL-terminated string
		rawAttr(18|rtnl.AttrNested, 16), // nested, NLA_F_NESTED
		rawAttr(1, 10, 'v', 'x', 'l', 'a', 'n', 0, 0, 0),
	)
	if got := ae.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("encoding:\n got % x\nwant % x", got, want)
	}
}

func TestAttributeDecoderRoundTrip(t *testing.T) {
	var ae rtnl.AttributeEncoder
	ae.Uint8(1, 7)
	ae.Uint16(2, 0xbeef)
	ae.Uint16BE(3, 4789)
	ae.Uint32(4, 16777216)
	ae.Uint64(5, 1<<40)
	ae.String(6, "vxlan1")
	ae.Addr(7, netip.MustParseAddr("198.51.100.3"))
	ae.Addr(8, netip.MustParseAddr("2001:db8::1"))
	ae.MAC(9, ethaddr.MAC{2, 0x42, 0xc6, 0x33, 0x64, 3})
	nest := ae.Begin(10)
	ae.Uint32(1, 99)
	ae.End(nest)

	ad := rtnl.NewAttributeDecoder(ae.Bytes())
	seen := 0
	for ad.Next() {
		seen++
		switch ad.Type() {
		case 1:
			check(t, "u8", ad.Uint8(), uint8(7))
		case 2:
			check(t, "u16", ad.Uint16(), uint16(0xbeef))
		case 3:
			check(t, "u16be", ad.Uint16BE(), uint16(4789))
		case 4:
			check(t, "u32", ad.Uint32(), uint32(16777216))
		case 5:
			check(t, "u64", ad.Uint64(), uint64(1<<40))
		case 6:
			check(t, "string", ad.String(), "vxlan1")
		case 7:
			check(t, "v4", ad.Addr(), netip.MustParseAddr("198.51.100.3"))
		case 8:
			check(t, "v6", ad.Addr(), netip.MustParseAddr("2001:db8::1"))
		case 9:
			check(t, "mac", ethaddr.MAC(ad.MAC()).String(), "02:42:c6:33:64:03")
		case 10:
			if !ad.Nested() {
				t.Errorf("attribute 10 not flagged nested")
			}
			in := ad.Nest()
			if !in.Next() || in.Type() != 1 || in.Uint32() != 99 || in.Next() || in.Err() != nil {
				t.Errorf("nested attribute did not decode: %v", in.Err())
			}
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	check(t, "attributes", seen, 10)
}

func TestAttributeDecoderErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		read func(*rtnl.AttributeDecoder)
	}{
		{"short header", rawAttr(1, 4)[:2], nil},
		{"length below header", rawAttr(1, 2), nil},
		{"length past end", rawAttr(1, 12, 1, 2, 3, 4), nil},
		{"u32 of 2 bytes", rawAttr(1, 6, 1, 2, 0, 0), func(ad *rtnl.AttributeDecoder) { ad.Uint32() }},
		{"address of 5 bytes", rawAttr(1, 9, 1, 2, 3, 4, 5, 0, 0, 0), func(ad *rtnl.AttributeDecoder) { ad.Addr() }},
		{"mac of 4 bytes", rawAttr(1, 8, 1, 2, 3, 4), func(ad *rtnl.AttributeDecoder) { ad.MAC() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ad := rtnl.NewAttributeDecoder(tt.b)
			for ad.Next() {
				if tt.read != nil {
					tt.read(&ad)
				}
			}
			if ad.Err() == nil {
				t.Fatalf("no error for % x", tt.b)
			}
			if ad.Next() {
				t.Fatalf("decoder went on after an error")
			}
		})
	}
}

func TestAttributeDecoderDoesNotAllocate(t *testing.T) {
	var ae rtnl.AttributeEncoder
	ae.Uint32(7, 42)
	ae.Addr(1, netip.MustParseAddr("198.51.100.3"))
	ae.MAC(2, ethaddr.MAC{2, 0x42, 0xc6, 0x33, 0x64, 3})
	b := ae.Bytes()
	var sink uint32
	allocs := testing.AllocsPerRun(100, func() {
		ad := rtnl.NewAttributeDecoder(b)
		for ad.Next() {
			switch ad.Type() {
			case 7:
				sink += ad.Uint32()
			case 1:
				a := ad.Addr()
				sink += uint32(a.As4()[3])
			case 2:
				sink += uint32(ad.MAC()[5])
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("decoding allocated %v times per run", allocs)
	}
	_ = sink
}

func check[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}
