package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Link attributes (IFLA_*, include/uapi/linux/if_link.h).
const (
	iflaAddress     = 1  // IFLA_ADDRESS
	iflaBroadcast   = 2  // IFLA_BROADCAST
	iflaIfName      = 3  // IFLA_IFNAME
	iflaMTU         = 4  // IFLA_MTU
	iflaLink        = 5  // IFLA_LINK
	iflaMaster      = 10 // IFLA_MASTER
	iflaTxQLen      = 13 // IFLA_TXQLEN
	iflaOperState   = 16 // IFLA_OPERSTATE
	iflaLinkInfo    = 18 // IFLA_LINKINFO
	iflaNetNSPID    = 19 // IFLA_NET_NS_PID
	iflaIfAlias     = 20 // IFLA_IFALIAS
	iflaAFSpec      = 26 // IFLA_AF_SPEC
	iflaNetNSFD     = 28 // IFLA_NET_NS_FD
	iflaLinkNetNSID = 37 // IFLA_LINK_NETNSID
	iflaMinMTU      = 50 // IFLA_MIN_MTU
	iflaMaxMTU      = 51 // IFLA_MAX_MTU
)

// LinkFlags are a link's IFF_* flags (ifi_flags, ifi_change).
type LinkFlags uint32

// Link flags (IFF_*).
const (
	LinkUp           LinkFlags = 0x1     // IFF_UP
	LinkBroadcast    LinkFlags = 0x2     // IFF_BROADCAST
	LinkDebug        LinkFlags = 0x4     // IFF_DEBUG
	LinkLoopback     LinkFlags = 0x8     // IFF_LOOPBACK
	LinkPointToPoint LinkFlags = 0x10    // IFF_POINTOPOINT
	LinkNoTrailers   LinkFlags = 0x20    // IFF_NOTRAILERS
	LinkRunning      LinkFlags = 0x40    // IFF_RUNNING
	LinkNoARP        LinkFlags = 0x80    // IFF_NOARP
	LinkPromisc      LinkFlags = 0x100   // IFF_PROMISC
	LinkAllMulti     LinkFlags = 0x200   // IFF_ALLMULTI
	LinkMaster       LinkFlags = 0x400   // IFF_MASTER
	LinkSlave        LinkFlags = 0x800   // IFF_SLAVE
	LinkMulticast    LinkFlags = 0x1000  // IFF_MULTICAST
	LinkPortSel      LinkFlags = 0x2000  // IFF_PORTSEL
	LinkAutoMedia    LinkFlags = 0x4000  // IFF_AUTOMEDIA
	LinkDynamic      LinkFlags = 0x8000  // IFF_DYNAMIC
	LinkLowerUp      LinkFlags = 0x10000 // IFF_LOWER_UP
	LinkDormant      LinkFlags = 0x20000 // IFF_DORMANT
	LinkEcho         LinkFlags = 0x40000 // IFF_ECHO
)

var linkFlagNames = [...]string{
	"UP", "BROADCAST", "DEBUG", "LOOPBACK", "POINTOPOINT", "NOTRAILERS", "RUNNING", "NOARP",
	"PROMISC", "ALLMULTI", "MASTER", "SLAVE", "MULTICAST", "PORTSEL", "AUTOMEDIA", "DYNAMIC",
	"LOWER_UP", "DORMANT", "ECHO",
}

// String formats the flags as iproute2 names joined by '|' ("UP|LOWER_UP"),
// unknown bits in hex, and "0" for none.
func (f LinkFlags) String() string {
	if f == 0 {
		return "0"
	}
	return bitNames(uint64(f), linkFlagNames[:])
}

// OperState is a link's RFC 2863 operational state (IFLA_OPERSTATE, IF_OPER_*).
type OperState uint8

// Operational states (IF_OPER_*).
const (
	OperUnknown        OperState = 0
	OperNotPresent     OperState = 1
	OperDown           OperState = 2
	OperLowerLayerDown OperState = 3
	OperTesting        OperState = 4
	OperDormant        OperState = 5
	OperUp             OperState = 6
)

// String returns the state as iproute2 prints it ("UP", "LOWERLAYERDOWN").
func (s OperState) String() string {
	switch s {
	case OperUnknown:
		return "UNKNOWN"
	case OperNotPresent:
		return "NOTPRESENT"
	case OperDown:
		return "DOWN"
	case OperLowerLayerDown:
		return "LOWERLAYERDOWN"
	case OperTesting:
		return "TESTING"
	case OperDormant:
		return "DORMANT"
	case OperUp:
		return "UP"
	}
	return fmt.Sprintf("OperState(%d)", uint8(s))
}

// LinkHas marks LinkMessage fields whose zero value is meaningful, so that
// the encoder sends them even when zero. The decoder sets the bit of each of
// these attributes it reads.
type LinkHas uint16

// Presence bits of LinkMessage.Present.
const (
	LinkHasMaster      LinkHas = 1 << iota // IFLA_MASTER: Master 0 detaches the link (nomaster)
	LinkHasLink                            // IFLA_LINK
	LinkHasTxQLen                          // IFLA_TXQLEN: 0 is a valid queue length
	LinkHasOperState                       // IFLA_OPERSTATE: 0 is IF_OPER_UNKNOWN
	LinkHasLinkNetNSID                     // IFLA_LINK_NETNSID: 0 is a valid id
	LinkHasNetNSFD                         // IFLA_NET_NS_FD: 0 is a valid descriptor
)

// LinkMessage is an rtnetlink link message: struct ifinfomsg and the IFLA_*
// attributes overlaynet uses.
//
// Encoding rule: an attribute is sent when its field is non-zero, and, for
// the fields listed under LinkHas, also when its bit is set in Present. Build
// requests from scratch (NewBridge, NewVxlan, the LinkSet helpers) rather
// than by editing a decoded message, which also carries read-only
// attributes. Attributes the type does not model are skipped when decoding.
type LinkMessage struct {
	Family uint8     // ifi_family, AF_UNSPEC (0) for links
	Type   uint16    // ifi_type, ARPHRD_* (1 = Ethernet)
	Index  int32     // ifi_index; 0 in a create request lets the kernel choose
	Flags  LinkFlags // ifi_flags
	Change LinkFlags // ifi_change: which Flags bits a request changes

	// Present lists the zero-able attributes a decoded message carried; when
	// encoding, those to send even when their field is zero. See LinkHas.
	Present LinkHas

	Name      string    // IFLA_IFNAME
	Alias     string    // IFLA_IFALIAS
	Address   [6]byte   // IFLA_ADDRESS; decoded only when 6 bytes long
	Broadcast [6]byte   // IFLA_BROADCAST; decoded only when 6 bytes long
	MTU       uint32    // IFLA_MTU
	MinMTU    uint32    // IFLA_MIN_MTU (reported by the kernel)
	MaxMTU    uint32    // IFLA_MAX_MTU (reported by the kernel)
	TxQLen    uint32    // IFLA_TXQLEN
	Link      int32     // IFLA_LINK: the lower or peer device (a veth's peer ifindex)
	Master    int32     // IFLA_MASTER: ifindex of the bridge the link is enslaved to
	OperState OperState // IFLA_OPERSTATE

	// LinkNetNSID is IFLA_LINK_NETNSID: the id, in this link's namespace, of
	// the namespace where Link lives (a veth peer or a vxlan's socket elsewhere).
	LinkNetNSID int32
	// NetNSFD is IFLA_NET_NS_FD: in a request, the namespace (an open nsfs
	// descriptor, NetNS.Fd) to create the link in or move it to.
	NetNSFD int
	// NetNSPID is IFLA_NET_NS_PID: in a request, move to the network
	// namespace of this process.
	NetNSPID uint32

	// Info is IFLA_LINKINFO: the link kind and its kind-specific data.
	Info *LinkInfo
}

// Kind returns the link kind ("bridge", "vxlan", "veth") or "" if the message
// has no IFLA_LINKINFO.
func (m *LinkMessage) Kind() string {
	if m.Info == nil {
		return ""
	}
	return m.Info.Kind
}

// MarshalBinary encodes m as an ifinfomsg followed by its attributes.
func (m *LinkMessage) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the encoding of m to b.
func (m *LinkMessage) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, m.Family, 0)
	b = binary.NativeEndian.AppendUint16(b, m.Type)
	b = binary.NativeEndian.AppendUint32(b, uint32(m.Index))
	b = binary.NativeEndian.AppendUint32(b, uint32(m.Flags))
	b = binary.NativeEndian.AppendUint32(b, uint32(m.Change))
	ae := NewAttributeEncoder(b)
	if err := m.encodeAttrs(&ae); err != nil {
		return b[:len(b)-ifinfomsgLen], err
	}
	return ae.Bytes(), nil
}

var errLinkNameLen = fmt.Errorf("rtnl: link name longer than %d bytes", ifNameSize-1)

func (m *LinkMessage) encodeAttrs(ae *AttributeEncoder) error {
	if len(m.Name) >= ifNameSize {
		return fmt.Errorf("%w: %q", errLinkNameLen, m.Name)
	}
	if m.Name != "" {
		ae.String(iflaIfName, m.Name)
	}
	if m.Alias != "" {
		ae.String(iflaIfAlias, m.Alias)
	}
	if m.Address != [6]byte{} {
		ae.MAC(iflaAddress, m.Address)
	}
	if m.Broadcast != [6]byte{} {
		ae.MAC(iflaBroadcast, m.Broadcast)
	}
	if m.MTU != 0 {
		ae.Uint32(iflaMTU, m.MTU)
	}
	if m.MinMTU != 0 {
		ae.Uint32(iflaMinMTU, m.MinMTU)
	}
	if m.MaxMTU != 0 {
		ae.Uint32(iflaMaxMTU, m.MaxMTU)
	}
	if m.TxQLen != 0 || m.Present&LinkHasTxQLen != 0 {
		ae.Uint32(iflaTxQLen, m.TxQLen)
	}
	if m.Link != 0 || m.Present&LinkHasLink != 0 {
		ae.Int32(iflaLink, m.Link)
	}
	if m.Master != 0 || m.Present&LinkHasMaster != 0 {
		ae.Int32(iflaMaster, m.Master)
	}
	if m.OperState != 0 || m.Present&LinkHasOperState != 0 {
		ae.Uint8(iflaOperState, uint8(m.OperState))
	}
	if m.LinkNetNSID != 0 || m.Present&LinkHasLinkNetNSID != 0 {
		ae.Int32(iflaLinkNetNSID, m.LinkNetNSID)
	}
	if m.NetNSFD != 0 || m.Present&LinkHasNetNSFD != 0 {
		if m.NetNSFD < 0 {
			return fmt.Errorf("rtnl: link %q: negative netns descriptor %d", m.Name, m.NetNSFD)
		}
		ae.Uint32(iflaNetNSFD, uint32(m.NetNSFD))
	}
	if m.NetNSPID != 0 {
		ae.Uint32(iflaNetNSPID, m.NetNSPID)
	}
	if m.Info != nil {
		return m.Info.encode(ae)
	}
	return nil
}

var errShortIfinfomsg = errors.New("rtnl: link message shorter than struct ifinfomsg")

// UnmarshalBinary decodes an ifinfomsg and its attributes into m, replacing
// its contents. It never panics; malformed input yields an error. Strings
// and kind data are copied out of b.
func (m *LinkMessage) UnmarshalBinary(b []byte) error {
	*m = LinkMessage{}
	if len(b) < ifinfomsgLen {
		return errShortIfinfomsg
	}
	m.Family = b[0]
	m.Type = binary.NativeEndian.Uint16(b[2:4])
	m.Index = int32(binary.NativeEndian.Uint32(b[4:8]))
	m.Flags = LinkFlags(binary.NativeEndian.Uint32(b[8:12]))
	m.Change = LinkFlags(binary.NativeEndian.Uint32(b[12:16]))
	ad := NewAttributeDecoder(b[ifinfomsgLen:])
	for ad.Next() {
		switch ad.Type() {
		case iflaIfName:
			m.Name = ad.String()
		case iflaIfAlias:
			m.Alias = ad.String()
		case iflaAddress:
			if ad.Len() == len([6]byte{}) {
				m.Address = ad.MAC()
			}
		case iflaBroadcast:
			if ad.Len() == len([6]byte{}) {
				m.Broadcast = ad.MAC()
			}
		case iflaMTU:
			m.MTU = ad.Uint32()
		case iflaMinMTU:
			m.MinMTU = ad.Uint32()
		case iflaMaxMTU:
			m.MaxMTU = ad.Uint32()
		case iflaTxQLen:
			m.TxQLen = ad.Uint32()
			m.Present |= LinkHasTxQLen
		case iflaLink:
			m.Link = ad.Int32()
			m.Present |= LinkHasLink
		case iflaMaster:
			m.Master = ad.Int32()
			m.Present |= LinkHasMaster
		case iflaOperState:
			m.OperState = OperState(ad.Uint8())
			m.Present |= LinkHasOperState
		case iflaLinkNetNSID:
			m.LinkNetNSID = ad.Int32()
			m.Present |= LinkHasLinkNetNSID
		case iflaNetNSFD:
			m.NetNSFD = int(ad.Uint32())
			m.Present |= LinkHasNetNSFD
		case iflaNetNSPID:
			m.NetNSPID = ad.Uint32()
		case iflaLinkInfo:
			info := new(LinkInfo)
			if err := info.decode(ad.Bytes()); err != nil {
				ad.Fail(err)
				break
			}
			m.Info = info
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rtnl: link %d: %w", m.Index, err)
	}
	return nil
}
