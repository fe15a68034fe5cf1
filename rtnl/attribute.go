package rtnl

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Attribute type flags carried in the high bits of nla_type.
const (
	AttrNested    uint16 = 0x8000 // NLA_F_NESTED
	AttrByteOrder uint16 = 0x4000 // NLA_F_NET_BYTEORDER
	attrTypeMask         = ^(AttrNested | AttrByteOrder)
	attrHeaderLen        = 4
)

// AttributeDecoder iterates over netlink attributes without allocating. It
// remembers the first error met, by a malformed attribute or a value of the
// wrong size, and stops there:
//
//	ad := rtnl.NewAttributeDecoder(b)
//	for ad.Next() {
//		switch ad.Type() {
//		case uint16(rtnl.NeighAttrVNI):
//			vni = ad.Uint32()
//		}
//	}
//	if err := ad.Err(); err != nil { ... }
//
// The zero value holds no attributes; Reset points it at a buffer.
type AttributeDecoder struct {
	b    []byte
	typ  uint16
	data []byte
	err  error
}

// NewAttributeDecoder returns a decoder over the attributes in b.
func NewAttributeDecoder(b []byte) AttributeDecoder { return AttributeDecoder{b: b} }

// Reset points the decoder at a new buffer and clears its error.
func (ad *AttributeDecoder) Reset(b []byte) { *ad = AttributeDecoder{b: b} }

// Next advances to the next attribute and reports whether there is one.
func (ad *AttributeDecoder) Next() bool {
	if ad.err != nil || len(ad.b) == 0 {
		return false
	}
	if len(ad.b) < attrHeaderLen {
		ad.err = fmt.Errorf("rtnl: %d trailing bytes are too short for an attribute", len(ad.b))
		return false
	}
	l := int(binary.NativeEndian.Uint16(ad.b[0:2]))
	if l < attrHeaderLen || l > len(ad.b) {
		ad.err = fmt.Errorf("rtnl: attribute type %d has length %d, %d bytes left",
			binary.NativeEndian.Uint16(ad.b[2:4])&attrTypeMask, l, len(ad.b))
		return false
	}
	ad.typ = binary.NativeEndian.Uint16(ad.b[2:4])
	ad.data = ad.b[attrHeaderLen:l]
	next := Align(l)
	if next > len(ad.b) {
		next = len(ad.b)
	}
	ad.b = ad.b[next:]
	return true
}

// Type returns the current attribute's type without the NLA_F_NESTED and
// NLA_F_NET_BYTEORDER flags.
func (ad *AttributeDecoder) Type() uint16 { return ad.typ & attrTypeMask }

// Nested reports whether the kernel flagged the current attribute NLA_F_NESTED.
func (ad *AttributeDecoder) Nested() bool { return ad.typ&AttrNested != 0 }

// Len returns the length of the current attribute's payload.
func (ad *AttributeDecoder) Len() int { return len(ad.data) }

// Bytes returns the current attribute's payload. It aliases the buffer: copy
// it to keep it.
func (ad *AttributeDecoder) Bytes() []byte { return ad.data }

// Err returns the first error met.
func (ad *AttributeDecoder) Err() error { return ad.err }

// Fail records err as the decoder's error (unless one is already recorded) and
// stops the iteration. Callers use it for semantic errors in values.
func (ad *AttributeDecoder) Fail(err error) {
	if ad.err == nil {
		ad.err = err
	}
	ad.b = nil
}

func (ad *AttributeDecoder) sized(n int) bool {
	if len(ad.data) != n {
		ad.Fail(fmt.Errorf("rtnl: attribute type %d: want %d bytes, have %d", ad.Type(), n, len(ad.data)))
		return false
	}
	return true
}

// Uint8 decodes the current attribute as a u8.
func (ad *AttributeDecoder) Uint8() uint8 {
	if !ad.sized(1) {
		return 0
	}
	return ad.data[0]
}

// Uint16 decodes the current attribute as a host-order u16.
func (ad *AttributeDecoder) Uint16() uint16 {
	if !ad.sized(2) {
		return 0
	}
	return binary.NativeEndian.Uint16(ad.data)
}

// Uint16BE decodes the current attribute as a big-endian (network order) u16,
// as NDA_PORT and IFLA_VXLAN_PORT are.
func (ad *AttributeDecoder) Uint16BE() uint16 {
	if !ad.sized(2) {
		return 0
	}
	return binary.BigEndian.Uint16(ad.data)
}

// Uint32 decodes the current attribute as a host-order u32.
func (ad *AttributeDecoder) Uint32() uint32 {
	if !ad.sized(4) {
		return 0
	}
	return binary.NativeEndian.Uint32(ad.data)
}

// Int32 decodes the current attribute as a host-order s32.
func (ad *AttributeDecoder) Int32() int32 { return int32(ad.Uint32()) }

// Uint64 decodes the current attribute as a host-order u64.
func (ad *AttributeDecoder) Uint64() uint64 {
	if !ad.sized(8) {
		return 0
	}
	return binary.NativeEndian.Uint64(ad.data)
}

// Flag reports a u8 boolean attribute as true when non-zero.
func (ad *AttributeDecoder) Flag() bool { return ad.Uint8() != 0 }

// String decodes the current attribute as a string, dropping a trailing NUL.
// It allocates; compare with Bytes where that matters.
func (ad *AttributeDecoder) String() string { return string(trimNUL(ad.data)) }

// Addr decodes the current attribute as a 4- or 16-byte IP address.
func (ad *AttributeDecoder) Addr() netip.Addr {
	switch len(ad.data) {
	case 4:
		return netip.AddrFrom4([4]byte(ad.data))
	case 16:
		return netip.AddrFrom16([16]byte(ad.data))
	}
	ad.Fail(fmt.Errorf("rtnl: attribute type %d: an IP address has 4 or 16 bytes, not %d", ad.Type(), len(ad.data)))
	return netip.Addr{}
}

// MAC decodes the current attribute as a 6-byte Ethernet address.
func (ad *AttributeDecoder) MAC() [6]byte {
	if !ad.sized(6) {
		return [6]byte{}
	}
	return [6]byte(ad.data)
}

// Nest returns a decoder over the current attribute's payload, for nested
// attributes. Errors in the nested decoder are its own; pass them back with
// Fail if the caller must stop.
func (ad *AttributeDecoder) Nest() AttributeDecoder { return AttributeDecoder{b: ad.data} }

func trimNUL(b []byte) []byte {
	for i, c := range b {
		if c == 0 {
			return b[:i]
		}
	}
	return b
}

// AttributeEncoder appends netlink attributes to a buffer. The zero value is
// ready to use; Bytes returns the encoding. Nested attributes are written
// between Begin and End without intermediate buffers:
//
//	var ae rtnl.AttributeEncoder
//	info := ae.Begin(18) // IFLA_LINKINFO
//	ae.String(1, "vxlan") // IFLA_INFO_KIND
//	ae.End(info)
type AttributeEncoder struct {
	b []byte
}

// NewAttributeEncoder returns an encoder that appends to b.
func NewAttributeEncoder(b []byte) AttributeEncoder { return AttributeEncoder{b: b} }

// Bytes returns the encoded attributes, including whatever the encoder was
// created with.
func (ae *AttributeEncoder) Bytes() []byte { return ae.b }

func (ae *AttributeEncoder) header(typ uint16, n int) {
	ae.b = binary.NativeEndian.AppendUint16(ae.b, uint16(attrHeaderLen+n))
	ae.b = binary.NativeEndian.AppendUint16(ae.b, typ)
}

func (ae *AttributeEncoder) pad() {
	for len(ae.b)%4 != 0 {
		ae.b = append(ae.b, 0)
	}
}

// Raw appends an attribute with payload p.
func (ae *AttributeEncoder) Raw(typ uint16, p []byte) {
	ae.header(typ, len(p))
	ae.b = append(ae.b, p...)
	ae.pad()
}

// Uint8 appends a u8 attribute.
func (ae *AttributeEncoder) Uint8(typ uint16, v uint8) {
	ae.header(typ, 1)
	ae.b = append(ae.b, v)
	ae.pad()
}

// Flag appends a u8 attribute holding 1 for true and 0 for false.
func (ae *AttributeEncoder) Flag(typ uint16, v bool) {
	var u uint8
	if v {
		u = 1
	}
	ae.Uint8(typ, u)
}

// Uint16 appends a host-order u16 attribute.
func (ae *AttributeEncoder) Uint16(typ uint16, v uint16) {
	ae.header(typ, 2)
	ae.b = binary.NativeEndian.AppendUint16(ae.b, v)
	ae.pad()
}

// Uint16BE appends a big-endian u16 attribute (NDA_PORT, IFLA_VXLAN_PORT).
func (ae *AttributeEncoder) Uint16BE(typ uint16, v uint16) {
	ae.header(typ, 2)
	ae.b = binary.BigEndian.AppendUint16(ae.b, v)
	ae.pad()
}

// Uint32 appends a host-order u32 attribute.
func (ae *AttributeEncoder) Uint32(typ uint16, v uint32) {
	ae.header(typ, 4)
	ae.b = binary.NativeEndian.AppendUint32(ae.b, v)
}

// Int32 appends a host-order s32 attribute.
func (ae *AttributeEncoder) Int32(typ uint16, v int32) { ae.Uint32(typ, uint32(v)) }

// Uint64 appends a host-order u64 attribute.
func (ae *AttributeEncoder) Uint64(typ uint16, v uint64) {
	ae.header(typ, 8)
	ae.b = binary.NativeEndian.AppendUint64(ae.b, v)
}

// String appends a NUL-terminated string attribute.
func (ae *AttributeEncoder) String(typ uint16, s string) {
	ae.header(typ, len(s)+1)
	ae.b = append(ae.b, s...)
	ae.b = append(ae.b, 0)
	ae.pad()
}

// Addr appends an IP address attribute of 4 bytes (IPv4, or IPv4-mapped
// IPv6 is NOT unmapped) or 16 bytes.
func (ae *AttributeEncoder) Addr(typ uint16, a netip.Addr) {
	if a.Is4() {
		b := a.As4()
		ae.Raw(typ, b[:])
		return
	}
	b := a.As16()
	ae.Raw(typ, b[:])
}

// MAC appends a 6-byte hardware address attribute.
func (ae *AttributeEncoder) MAC(typ uint16, m [6]byte) { ae.Raw(typ, m[:]) }

// Begin starts a nested attribute (flagged NLA_F_NESTED) and returns a mark
// to pass to End.
func (ae *AttributeEncoder) Begin(typ uint16) int {
	return ae.begin(typ | AttrNested)
}

// BeginUnflagged starts a nested attribute without NLA_F_NESTED, for the
// attributes the kernel parses that way (IFLA_LINKINFO's members, VETH_INFO_PEER).
func (ae *AttributeEncoder) BeginUnflagged(typ uint16) int { return ae.begin(typ) }

func (ae *AttributeEncoder) begin(typ uint16) int {
	at := len(ae.b)
	ae.header(typ, 0)
	return at
}

// End closes the nested attribute started at mark.
func (ae *AttributeEncoder) End(mark int) {
	ae.pad()
	binary.NativeEndian.PutUint16(ae.b[mark:], uint16(len(ae.b)-mark))
}

// AppendRaw appends bytes with no attribute header (for fixed structs inside
// nests, such as the ifinfomsg of VETH_INFO_PEER).
func (ae *AttributeEncoder) AppendRaw(p []byte) { ae.b = append(ae.b, p...) }
