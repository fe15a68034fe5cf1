package rtnl

import (
	"net/netip"
)

// ARPEntry describes a neighbour entry mapping an IP address to a MAC on a
// device, as `ip neigh replace IP lladdr MAC dev DEV nud permanent` programs
// it, for either family (one encoder for ARP and IPv6 neighbour discovery
// entries): family AF_INET for an IPv4 (or IPv4-mapped) address with a
// 4-byte NDA_DST, AF_INET6 with a 16-byte one otherwise, and NDA_LLADDR. Batch.NeighReplaceARP and
// Batch.NeighDeleteARP encode it without allocating; Message builds the
// NeighMessage for a Conn.
type ARPEntry struct {
	Ifindex  int32      // the device
	IP       netip.Addr // the neighbour's address (its zone is dropped)
	MAC      [6]byte    // its link-layer address
	State    NeighState // 0 means NeighPermanent
	Flags    NeighFlags // NTF_* flags, e.g. NeighFlagExtLearned
	Protocol uint8      // NDA_PROTOCOL, the entry's owner; 0 is not sent
}

// neigh returns e's message. Its LLAddr aliases e.MAC: e must outlive it.
func (e *ARPEntry) neigh() NeighMessage {
	m := NeighMessage{Family: FamilyInet6, Ifindex: e.Ifindex, State: e.State, Flags: e.Flags,
		Dst: e.IP.WithZone(""), LLAddr: e.MAC[:], Protocol: e.Protocol}
	if e.IP.Is4() || e.IP.Is4In6() {
		m.Family, m.Dst = FamilyInet, e.IP.Unmap()
	}
	if m.State == 0 {
		m.State = NeighPermanent
	}
	return m
}

// Message returns the entry as an RTM_NEWNEIGH/RTM_DELNEIGH body.
func (e ARPEntry) Message() *NeighMessage {
	m := e.neigh()
	return &m
}

// FDBEntry describes an entry of a vxlan device's own forwarding database,
// as `bridge fdb add|replace MAC dev DEV self dst VTEP vni N port P via DEV`
// programs it: family AF_BRIDGE, flags NTF_SELF (without it the entry would
// go to the bridge's FDB), state PERMANENT unless State says otherwise.
// Batch.NeighReplaceFDB and Batch.NeighDeleteFDB encode it without
// allocating; Message builds the NeighMessage for a Conn.
type FDBEntry struct {
	Ifindex int32      // the vxlan device
	MAC     [6]byte    // the inner (container) MAC; all zeros is the default entry
	Dst     netip.Addr // the remote VTEP; same family as the vxlan's remote or local
	// VNI is the remote VNI; 0 means the device's own VNI (not sent) unless
	// HasVNI is set.
	VNI uint32
	// Port is the remote UDP port; 0 means the device's port (not sent) unless
	// HasPort is set.
	Port    uint16
	Via     uint32     // outgoing underlay device (NDA_IFINDEX); 0 for none
	SrcVNI  uint32     // NDA_SRC_VNI, for collect-metadata devices; 0 for none
	State   NeighState // 0 means NeighPermanent; the kernel accepts PERMANENT or REACHABLE
	Flags   NeighFlags // extra NTF_* flags (NeighFlagExtLearned); NTF_SELF is always set
	HasVNI  bool       // send VNI even when it is 0
	HasPort bool       // send Port even when it is 0
}

// neigh returns e's message. Its LLAddr aliases e.MAC: e must outlive it.
func (e *FDBEntry) neigh() NeighMessage {
	m := NeighMessage{
		Family:  FamilyBridge,
		Ifindex: e.Ifindex,
		State:   e.State,
		Flags:   e.Flags | NeighFlagSelf,
		Dst:     e.Dst,
		LLAddr:  e.MAC[:],
		VNI:     e.VNI,
		Port:    e.Port,
		Via:     e.Via,
		SrcVNI:  e.SrcVNI,
	}
	if m.State == 0 {
		m.State = NeighPermanent
	}
	if e.HasVNI {
		m.Present.Set(NeighAttrVNI)
	}
	if e.HasPort {
		m.Present.Set(NeighAttrPort)
	}
	return m
}

// Message returns the entry as an RTM_NEWNEIGH/RTM_DELNEIGH body.
func (e FDBEntry) Message() *NeighMessage {
	m := e.neigh()
	return &m
}

// NeighReplaceARP appends an RTM_NEWNEIGH NLM_F_CREATE|NLM_F_REPLACE
// request for e, encoded in place: it allocates nothing once the batch's
// buffer has room.
func (b *Batch) NeighReplaceARP(e ARPEntry) error {
	m := e.neigh()
	return b.addNeigh(MsgNewNeigh, FlagCreate|FlagReplace, &m)
}

// NeighDeleteARP appends an RTM_DELNEIGH request for e, encoded in place.
func (b *Batch) NeighDeleteARP(e ARPEntry) error {
	m := e.neigh()
	return b.addNeigh(MsgDelNeigh, 0, &m)
}

// NeighReplaceFDB appends an RTM_NEWNEIGH NLM_F_CREATE|NLM_F_REPLACE
// request for e, encoded in place: it allocates nothing once the batch's
// buffer has room.
func (b *Batch) NeighReplaceFDB(e FDBEntry) error {
	m := e.neigh()
	return b.addNeigh(MsgNewNeigh, FlagCreate|FlagReplace, &m)
}

// NeighDeleteFDB appends an RTM_DELNEIGH request for e (its MAC and, when
// set, the remote its Dst, VNI and Port select), encoded in place.
func (b *Batch) NeighDeleteFDB(e FDBEntry) error {
	m := e.neigh()
	return b.addNeigh(MsgDelNeigh, 0, &m)
}
