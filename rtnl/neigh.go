package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// NeighState is a neighbour's state: a set of NUD_* bits (ndm_state).
type NeighState uint16

// Neighbour states (NUD_*).
const (
	NeighNone       NeighState = 0x00 // NUD_NONE
	NeighIncomplete NeighState = 0x01 // NUD_INCOMPLETE: resolution in progress
	NeighReachable  NeighState = 0x02 // NUD_REACHABLE: confirmed recently
	NeighStale      NeighState = 0x04 // NUD_STALE: valid but unconfirmed (also every vxlan miss)
	NeighDelay      NeighState = 0x08 // NUD_DELAY: waiting before probing
	NeighProbe      NeighState = 0x10 // NUD_PROBE: probing
	NeighFailed     NeighState = 0x20 // NUD_FAILED: resolution failed
	NeighNoARP      NeighState = 0x40 // NUD_NOARP: no resolution needed
	NeighPermanent  NeighState = 0x80 // NUD_PERMANENT: static, never expires
)

// NeighFlags are a neighbour's NTF_* flags (ndm_flags).
type NeighFlags uint8

// Neighbour flags (NTF_*).
const (
	NeighFlagUse        NeighFlags = 0x01 // NTF_USE: mark used (refresh)
	NeighFlagSelf       NeighFlags = 0x02 // NTF_SELF: the device's own FDB (vxlan), not the bridge's
	NeighFlagMaster     NeighFlags = 0x04 // NTF_MASTER: the master (bridge) FDB
	NeighFlagProxy      NeighFlags = 0x08 // NTF_PROXY: a proxy-ARP/ND entry
	NeighFlagExtLearned NeighFlags = 0x10 // NTF_EXT_LEARNED: learned by an external agent
	NeighFlagOffloaded  NeighFlags = 0x20 // NTF_OFFLOADED: offloaded to hardware
	NeighFlagSticky     NeighFlags = 0x40 // NTF_STICKY: an FDB entry that never moves port
	NeighFlagRouter     NeighFlags = 0x80 // NTF_ROUTER: an IPv6 router
)

// NeighAttr is a neighbour attribute type (NDA_*).
type NeighAttr uint16

// Neighbour attributes (NDA_*). golang.org/x/sys/unix lacks the newer ones.
const (
	NeighAttrDst          NeighAttr = 1  // NDA_DST: IP address (neighbour) or remote VTEP (vxlan FDB)
	NeighAttrLLAddr       NeighAttr = 2  // NDA_LLADDR: link-layer address
	NeighAttrCacheInfo    NeighAttr = 3  // NDA_CACHEINFO: struct nda_cacheinfo
	NeighAttrProbes       NeighAttr = 4  // NDA_PROBES: u32
	NeighAttrVLAN         NeighAttr = 5  // NDA_VLAN: u16
	NeighAttrPort         NeighAttr = 6  // NDA_PORT: be16
	NeighAttrVNI          NeighAttr = 7  // NDA_VNI: u32, host order
	NeighAttrIfindex      NeighAttr = 8  // NDA_IFINDEX: u32
	NeighAttrMaster       NeighAttr = 9  // NDA_MASTER: u32
	NeighAttrLinkNetnsID  NeighAttr = 10 // NDA_LINK_NETNSID: s32
	NeighAttrSrcVNI       NeighAttr = 11 // NDA_SRC_VNI: u32
	NeighAttrProtocol     NeighAttr = 12 // NDA_PROTOCOL: u8
	NeighAttrNHID         NeighAttr = 13 // NDA_NH_ID: u32
	NeighAttrFDBExtAttrs  NeighAttr = 14 // NDA_FDB_EXT_ATTRS: nested (skipped when decoding)
	NeighAttrFlagsExt     NeighAttr = 15 // NDA_FLAGS_EXT: u32
	NeighAttrNDMStateMask NeighAttr = 16 // NDA_NDM_STATE_MASK: u16 (bulk delete requests)
	NeighAttrNDMFlagsMask NeighAttr = 17 // NDA_NDM_FLAGS_MASK: u8 (bulk delete requests)
	neighAttrMaxKnown               = NeighAttrNDMFlagsMask
	neighMaxLLAddrLen               = 32 // MAX_ADDR_LEN
	neighHeaderLen                  = 12 // sizeof(struct ndmsg)
	neighCacheInfoLen               = 16 // sizeof(struct nda_cacheinfo)
	neighAttrNoSize                 = -1 // variable-size attribute
	neighAttrSkipped                = -2 // known attribute not decoded into a field
)

// NeighAttrSet is a set of neighbour attributes, bit 1<<attr for attribute
// types below 32.
type NeighAttrSet uint32

// Has reports whether a is in the set.
func (s NeighAttrSet) Has(a NeighAttr) bool { return a < 32 && s&(1<<a) != 0 }

// Set adds a to the set; attribute types of 32 and above are ignored.
func (s *NeighAttrSet) Set(a NeighAttr) {
	if a < 32 {
		*s |= 1 << a
	}
}

// NeighCacheInfo is struct nda_cacheinfo: ages in clock ticks (USER_HZ) and
// the entry's reference count.
type NeighCacheInfo struct {
	Confirmed, Used, Updated, RefCount uint32
}

// NeighMessage is an ndmsg with its attributes: a neighbour (ARP/ND) entry,
// an FDB entry (family AF_BRIDGE), a neighbour dump request or a miss
// notification.
//
// Encoding sends an attribute when its field is non-zero (Dst valid, LLAddr
// non-empty) or its bit is in Present, so that VNI 0 or Port 0 can be sent
// explicitly. CacheInfo is never encoded. Decoding sets Present for every
// attribute seen, skips unknown attributes and fails on a known attribute of
// the wrong size.
type NeighMessage struct {
	Family  uint8      // AF_INET, AF_INET6, AF_BRIDGE
	Ifindex int32      // the device owning the entry
	State   NeighState // NUD_* bits
	Flags   NeighFlags // NTF_* bits
	Type    uint8      // RTN_*
	// Present lists the attributes a decoded message carried; when encoding,
	// the attributes to send even when their field is zero.
	Present NeighAttrSet

	Dst netip.Addr // NDA_DST
	// LLAddr is NDA_LLADDR. Decoding reuses this slice's storage
	// (append(m.LLAddr[:0], ...)), so repeated decodes into one message do not
	// allocate: copy it to keep it past the next decode.
	LLAddr      HardwareAddr
	CacheInfo   NeighCacheInfo // NDA_CACHEINFO (decoded only)
	Probes      uint32         // NDA_PROBES
	VLAN        uint16         // NDA_VLAN
	Port        uint16         // NDA_PORT, host value; big-endian on the wire
	VNI         uint32         // NDA_VNI, host order on the wire
	Via         uint32         // NDA_IFINDEX: outgoing underlay device of a vxlan FDB entry
	Master      uint32         // NDA_MASTER
	LinkNetnsID int32          // NDA_LINK_NETNSID
	SrcVNI      uint32         // NDA_SRC_VNI
	Protocol    uint8          // NDA_PROTOCOL
	NHID        uint32         // NDA_NH_ID
	FlagsExt    uint32         // NDA_FLAGS_EXT
}

// MAC returns LLAddr as a MAC when it holds exactly 6 bytes.
func (m *NeighMessage) MAC() ([6]byte, bool) {
	if len(m.LLAddr) != 6 {
		return [6]byte{}, false
	}
	return [6]byte(m.LLAddr), true
}

// MarshalBinary encodes the ndmsg and its attributes.
func (m *NeighMessage) MarshalBinary() ([]byte, error) {
	return m.AppendBinary(make([]byte, 0, 64))
}

// AppendBinary appends the ndmsg and its attributes to b. Attributes are
// padded to 4-byte boundaries of b itself, so len(b) must be a multiple of 4,
// as it is wherever a netlink message starts.
func (m *NeighMessage) AppendBinary(b []byte) ([]byte, error) {
	if len(m.LLAddr) > neighMaxLLAddrLen {
		return b, fmt.Errorf("rtnl: %v of %d bytes is longer than %d", NeighAttrLLAddr, len(m.LLAddr), neighMaxLLAddrLen)
	}
	if !m.Dst.IsValid() && m.Present.Has(NeighAttrDst) {
		return b, fmt.Errorf("rtnl: %v is marked present but Dst is not a valid address", NeighAttrDst)
	}
	b = append(b, m.Family, 0, 0, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(m.Ifindex))
	b = binary.NativeEndian.AppendUint16(b, uint16(m.State))
	b = append(b, uint8(m.Flags), m.Type)

	ae := NewAttributeEncoder(b)
	send := func(a NeighAttr, nonZero bool) bool { return nonZero || m.Present.Has(a) }
	if m.Dst.IsValid() {
		ae.Addr(uint16(NeighAttrDst), m.Dst)
	}
	if send(NeighAttrLLAddr, len(m.LLAddr) > 0) {
		ae.Raw(uint16(NeighAttrLLAddr), m.LLAddr)
	}
	if send(NeighAttrProbes, m.Probes != 0) {
		ae.Uint32(uint16(NeighAttrProbes), m.Probes)
	}
	if send(NeighAttrVLAN, m.VLAN != 0) {
		ae.Uint16(uint16(NeighAttrVLAN), m.VLAN)
	}
	if send(NeighAttrPort, m.Port != 0) {
		ae.Uint16BE(uint16(NeighAttrPort), m.Port)
	}
	if send(NeighAttrVNI, m.VNI != 0) {
		ae.Uint32(uint16(NeighAttrVNI), m.VNI)
	}
	if send(NeighAttrIfindex, m.Via != 0) {
		ae.Uint32(uint16(NeighAttrIfindex), m.Via)
	}
	if send(NeighAttrMaster, m.Master != 0) {
		ae.Uint32(uint16(NeighAttrMaster), m.Master)
	}
	if send(NeighAttrLinkNetnsID, m.LinkNetnsID != 0) {
		ae.Int32(uint16(NeighAttrLinkNetnsID), m.LinkNetnsID)
	}
	if send(NeighAttrSrcVNI, m.SrcVNI != 0) {
		ae.Uint32(uint16(NeighAttrSrcVNI), m.SrcVNI)
	}
	if send(NeighAttrProtocol, m.Protocol != 0) {
		ae.Uint8(uint16(NeighAttrProtocol), m.Protocol)
	}
	if send(NeighAttrNHID, m.NHID != 0) {
		ae.Uint32(uint16(NeighAttrNHID), m.NHID)
	}
	if send(NeighAttrFlagsExt, m.FlagsExt != 0) {
		ae.Uint32(uint16(NeighAttrFlagsExt), m.FlagsExt)
	}
	return ae.Bytes(), nil
}

var errNeighShort = errors.New("rtnl: neighbour message shorter than an ndmsg (12 bytes)")

// neighAttrSize is the payload size of each known fixed-size attribute.
var neighAttrSize = [neighAttrMaxKnown + 1]int8{
	NeighAttrDst:          neighAttrNoSize,
	NeighAttrLLAddr:       neighAttrNoSize,
	NeighAttrCacheInfo:    neighCacheInfoLen,
	NeighAttrProbes:       4,
	NeighAttrVLAN:         2,
	NeighAttrPort:         2,
	NeighAttrVNI:          4,
	NeighAttrIfindex:      4,
	NeighAttrMaster:       4,
	NeighAttrLinkNetnsID:  4,
	NeighAttrSrcVNI:       4,
	NeighAttrProtocol:     1,
	NeighAttrNHID:         4,
	NeighAttrFDBExtAttrs:  neighAttrSkipped,
	NeighAttrFlagsExt:     4,
	NeighAttrNDMStateMask: 2,
	NeighAttrNDMFlagsMask: 1,
}

// UnmarshalBinary decodes an ndmsg and its attributes into m, resetting every
// field first but keeping LLAddr's storage. It does not allocate once LLAddr
// has room, never panics, and reports malformed input with an error naming
// the attribute.
func (m *NeighMessage) UnmarshalBinary(b []byte) error {
	*m = NeighMessage{LLAddr: m.LLAddr[:0]}
	if len(b) < neighHeaderLen {
		return errNeighShort
	}
	m.Family = b[0]
	m.Ifindex = int32(binary.NativeEndian.Uint32(b[4:8]))
	m.State = NeighState(binary.NativeEndian.Uint16(b[8:10]))
	m.Flags = NeighFlags(b[10])
	m.Type = b[11]

	ad := NewAttributeDecoder(b[neighHeaderLen:])
	for ad.Next() {
		a := NeighAttr(ad.Type())
		if a > neighAttrMaxKnown || a == 0 {
			continue
		}
		p := ad.Bytes()
		if want := int(neighAttrSize[a]); want >= 0 && len(p) != want {
			return fmt.Errorf("rtnl: neighbour attribute %v: want %d bytes, have %d", a, want, len(p))
		}
		m.Present.Set(a)
		switch a {
		case NeighAttrDst:
			switch len(p) {
			case 4:
				m.Dst = netip.AddrFrom4([4]byte(p))
			case 16:
				m.Dst = netip.AddrFrom16([16]byte(p))
			default:
				return fmt.Errorf("rtnl: neighbour attribute %v: want 4 or 16 bytes, have %d", a, len(p))
			}
		case NeighAttrLLAddr:
			m.LLAddr = append(m.LLAddr[:0], p...)
		case NeighAttrCacheInfo:
			m.CacheInfo = NeighCacheInfo{
				Confirmed: binary.NativeEndian.Uint32(p[0:4]),
				Used:      binary.NativeEndian.Uint32(p[4:8]),
				Updated:   binary.NativeEndian.Uint32(p[8:12]),
				RefCount:  binary.NativeEndian.Uint32(p[12:16]),
			}
		case NeighAttrProbes:
			m.Probes = binary.NativeEndian.Uint32(p)
		case NeighAttrVLAN:
			m.VLAN = binary.NativeEndian.Uint16(p)
		case NeighAttrPort:
			m.Port = binary.BigEndian.Uint16(p)
		case NeighAttrVNI:
			m.VNI = binary.NativeEndian.Uint32(p)
		case NeighAttrIfindex:
			m.Via = binary.NativeEndian.Uint32(p)
		case NeighAttrMaster:
			m.Master = binary.NativeEndian.Uint32(p)
		case NeighAttrLinkNetnsID:
			m.LinkNetnsID = int32(binary.NativeEndian.Uint32(p))
		case NeighAttrSrcVNI:
			m.SrcVNI = binary.NativeEndian.Uint32(p)
		case NeighAttrProtocol:
			m.Protocol = p[0]
		case NeighAttrNHID:
			m.NHID = binary.NativeEndian.Uint32(p)
		case NeighAttrFlagsExt:
			m.FlagsExt = binary.NativeEndian.Uint32(p)
		}
	}
	return ad.Err()
}
