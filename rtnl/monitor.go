package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// MissKind says which kernel path asked userspace for an address.
type MissKind uint8

// Kinds of miss notifications (RTM_GETNEIGH on RTNLGRP_NEIGH).
const (
	// MissL3 is a vxlan L3 miss (vxlan_ip_miss): an ARP request or IPv6
	// neighbour solicitation reached a proxy vxlan device with l3miss and
	// found no neighbour entry. Miss.IP is the address asked for.
	MissL3 MissKind = iota + 1
	// MissL2 is a vxlan L2 miss (vxlan_fdb_miss): a unicast frame reached a
	// vxlan device with l2miss and found no FDB entry. Miss.MAC is the
	// destination asked for.
	MissL2
	// MissAppSolicit is the neighbour table's request to userspace
	// (neigh_app_ns, app_probes > 0): a new or probing entry on a device.
	// Miss.IP is the address, Miss.Probes the probes sent so far, Miss.MAC
	// the old link-layer address of a probing (NUD_PROBE) entry.
	MissAppSolicit
)

// String returns "l3miss", "l2miss" or "app_solicit".
func (k MissKind) String() string {
	switch k {
	case MissL3:
		return "l3miss"
	case MissL2:
		return "l2miss"
	case MissAppSolicit:
		return "app_solicit"
	}
	return fmt.Sprintf("MissKind(%d)", uint8(k))
}

// Miss is one decoded miss notification. It is a value type: decoding one
// never allocates.
type Miss struct {
	Kind    MissKind
	Family  uint8      // ndm_family: AF_INET or AF_INET6
	Ifindex int32      // the vxlan device (or the neighbour's device for app_solicit)
	State   NeighState // NUD_STALE for vxlan misses; INCOMPLETE or PROBE for app_solicit
	IP      netip.Addr // NDA_DST: the address asked for (L3, app_solicit); invalid for L2
	MAC     [6]byte    // NDA_LLADDR: the MAC asked for (L2), old MAC (app_solicit in PROBE)
	HasMAC  bool       // NDA_LLADDR was present with 6 bytes
	// VNI is NDA_VNI as the kernel reports it, HasVNI whether it did. It is
	// not the device's VNI: an L3 miss carries 16777216 (VXLAN_N_VID, "no
	// VNI"), an L2 miss 0 (left out when the device's own VNI is 0).
	VNI    uint32
	HasVNI bool
	Probes uint32 // NDA_PROBES (app_solicit)
	// LinkNetnsID is NDA_LINK_NETNSID: the netns id (in the monitor's netns)
	// of the vxlan's UDP socket, present when the device was created from
	// another netns.
	LinkNetnsID    int32
	HasLinkNetnsID bool
}

// EventKind says what an Event carries.
type EventKind uint8

// Kinds of monitor events.
const (
	// EventMiss carries a miss notification in Event.Miss.
	EventMiss EventKind = iota + 1
	// EventNeighAdd carries a new or changed neighbour or FDB entry
	// (RTM_NEWNEIGH) in Event.Neigh.
	EventNeighAdd
	// EventNeighDelete carries a removed entry (RTM_DELNEIGH) in Event.Neigh.
	EventNeighDelete
	// EventOverrun reports that the socket's receive buffer overflowed
	// (ENOBUFS): notifications were lost, and the kernel dropped all of them
	// until the queue was drained. Resync the state that matters.
	EventOverrun
)

// String returns "miss", "neigh_add", "neigh_delete" or "overrun".
func (k EventKind) String() string {
	switch k {
	case EventMiss:
		return "miss"
	case EventNeighAdd:
		return "neigh_add"
	case EventNeighDelete:
		return "neigh_delete"
	case EventOverrun:
		return "overrun"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one monitor event. The monitor reuses a single Event (and the
// storage of Neigh.LLAddr) for every delivery: copy what must outlive the
// callback.
type Event struct {
	Kind EventKind
	// PortID is the message's nlmsg_pid: for a change made through netlink,
	// the port id of the socket that asked for it (compare with
	// Conn.PortID to skip your own echoes); 0 for misses and kernel-made
	// changes. The sender of every delivered message is the kernel.
	PortID uint32
	Miss   Miss         // valid for EventMiss
	Neigh  NeighMessage // valid for EventNeighAdd and EventNeighDelete
}

var (
	errMissShort   = errors.New("rtnl: miss notification shorter than an ndmsg (12 bytes)")
	errMissNoAddr  = errors.New("rtnl: miss notification carries neither NDA_DST nor NDA_LLADDR")
	errMissNoDst   = errors.New("rtnl: app_solicit notification carries no NDA_DST")
	errMissBadDst  = errors.New("rtnl: miss notification: NDA_DST is neither 4 nor 16 bytes")
	errMissBadLL   = errors.New("rtnl: miss notification: NDA_LLADDR is not 6 bytes")
	errMissBadU32  = errors.New("rtnl: miss notification: a u32 attribute is not 4 bytes")
	errMissBadAttr = errors.New("rtnl: miss notification: malformed attribute")
)

// Classify decodes one netlink message of the RTNLGRP_NEIGH group, header
// included, as read from the socket, into ev. Bytes past the header's length
// are ignored. It is pure (no system calls) and does not allocate for misses;
// neighbour add/delete events decode into ev.Neigh, reusing its LLAddr
// storage.
//
// It returns ok=false with a nil error for messages that are not events
// (other types, families other than IP for a miss), and an error for a
// malformed message. The kernel's rules:
//
//   - RTM_GETNEIGH with NLM_F_REQUEST is an app_solicit (NDA_DST required).
//   - RTM_GETNEIGH without it comes from vxlan: with NDA_DST an L3 miss,
//     else with NDA_LLADDR an L2 miss.
//   - Misses have family AF_INET or AF_INET6 (an L2 miss says AF_INET even
//     on an IPv6 vxlan); others are ignored.
//   - RTM_NEWNEIGH and RTM_DELNEIGH are EventNeighAdd and EventNeighDelete.
//
// Senders are not checked here: a Monitor drops datagrams whose sender port
// id is not 0 (the kernel) before classifying.
func Classify(b []byte, ev *Event) (ok bool, err error) {
	if len(b) < HeaderLen {
		return false, errShortMessage
	}
	l := binary.NativeEndian.Uint32(b[0:4])
	if l < HeaderLen || uint64(l) > uint64(len(b)) {
		return false, errMessageLength
	}
	return classify(binary.NativeEndian.Uint16(b[4:6]), binary.NativeEndian.Uint16(b[6:8]),
		binary.NativeEndian.Uint32(b[12:16]), b[HeaderLen:l], ev)
}

var errMessageLength = errors.New("rtnl: message length does not fit its buffer")

func classify(typ, flags uint16, pid uint32, data []byte, ev *Event) (ok bool, err error) {
	switch typ {
	case MsgGetNeigh:
		if err := decodeMiss(flags, data, &ev.Miss); err != nil {
			return false, err
		}
		if ev.Miss.Kind == 0 {
			return false, nil
		}
		ev.Kind = EventMiss
	case MsgNewNeigh, MsgDelNeigh:
		if err := ev.Neigh.UnmarshalBinary(data); err != nil {
			return false, err
		}
		ev.Kind = EventNeighAdd
		if typ == MsgDelNeigh {
			ev.Kind = EventNeighDelete
		}
	default:
		return false, nil
	}
	ev.PortID = pid
	return true, nil
}

// decodeMiss decodes the payload of an RTM_GETNEIGH notification (the
// ndmsg and its attributes) into m. flags are the message's nlmsg flags
// (NLM_F_REQUEST marks an app_solicit). m.Kind is 0 for a message that is
// not a miss (a family other than AF_INET/AF_INET6). It never allocates on
// success.
func decodeMiss(flags uint16, data []byte, m *Miss) error {
	*m = Miss{}
	if len(data) < neighHeaderLen {
		return errMissShort
	}
	m.Family = data[0]
	if m.Family != FamilyInet && m.Family != FamilyInet6 {
		return nil
	}
	m.Ifindex = int32(binary.NativeEndian.Uint32(data[4:8]))
	m.State = NeighState(binary.NativeEndian.Uint16(data[8:10]))
	var hasDst bool
	b := data[neighHeaderLen:]
	// A hand-rolled attribute walk: the AttributeDecoder formats errors with
	// fmt, and a miss path that can fail on hostile input must not allocate.
	for len(b) >= attrHeaderLen {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < attrHeaderLen || l > len(b) {
			return errMissBadAttr
		}
		p := b[attrHeaderLen:l]
		switch NeighAttr(binary.NativeEndian.Uint16(b[2:4]) & attrTypeMask) {
		case NeighAttrDst:
			switch len(p) {
			case 4:
				m.IP = netip.AddrFrom4([4]byte(p))
			case 16:
				m.IP = netip.AddrFrom16([16]byte(p))
			default:
				return errMissBadDst
			}
			hasDst = true
		case NeighAttrLLAddr:
			if len(p) != 6 {
				return errMissBadLL
			}
			m.MAC, m.HasMAC = [6]byte(p), true
		case NeighAttrVNI:
			if len(p) != 4 {
				return errMissBadU32
			}
			m.VNI, m.HasVNI = binary.NativeEndian.Uint32(p), true
		case NeighAttrProbes:
			if len(p) != 4 {
				return errMissBadU32
			}
			m.Probes = binary.NativeEndian.Uint32(p)
		case NeighAttrLinkNetnsID:
			if len(p) != 4 {
				return errMissBadU32
			}
			m.LinkNetnsID, m.HasLinkNetnsID = int32(binary.NativeEndian.Uint32(p)), true
		}
		next := Align(l)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
	}
	if len(b) != 0 {
		return errMissBadAttr
	}
	switch {
	case flags&FlagRequest != 0:
		if !hasDst {
			return errMissNoDst
		}
		m.Kind = MissAppSolicit
	case hasDst:
		m.Kind = MissL3
	case m.HasMAC:
		m.Kind = MissL2
	default:
		return errMissNoAddr
	}
	return nil
}

// MonitorStats are a monitor's counters since it was created, for a daemon
// to export. Each field is read atomically; the set is not a snapshot.
type MonitorStats struct {
	Datagrams    uint64 // datagrams read from the socket
	Messages     uint64 // netlink messages in them from the kernel
	L3Misses     uint64 // EventMiss with MissL3 delivered
	L2Misses     uint64 // EventMiss with MissL2 delivered
	AppSolicits  uint64 // EventMiss with MissAppSolicit delivered
	NeighAdds    uint64 // EventNeighAdd delivered
	NeighDeletes uint64 // EventNeighDelete delivered
	Overruns     uint64 // ENOBUFS reports (EventOverrun delivered)
	DecodeErrors uint64 // messages that did not decode (truncated or malformed)
	Ignored      uint64 // messages that are not events, and datagrams not from the kernel
	Syscalls     uint64 // recvmmsg calls (Receives on a Transport) that returned data
}

// Misses returns the number of misses of every kind.
func (s MonitorStats) Misses() uint64 { return s.L3Misses + s.L2Misses + s.AppSolicits }
