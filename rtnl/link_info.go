package rtnl

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Attributes of IFLA_LINKINFO (IFLA_INFO_*), of a bridge's IFLA_INFO_DATA
// (IFLA_BR_*) and of a vxlan device's (IFLA_VXLAN_*).
const (
	iflaInfoKind      = 1 // IFLA_INFO_KIND
	iflaInfoData      = 2 // IFLA_INFO_DATA
	iflaInfoSlaveKind = 4 // IFLA_INFO_SLAVE_KIND

	iflaBrForwardDelay  = 1  // IFLA_BR_FORWARD_DELAY
	iflaBrHelloTime     = 2  // IFLA_BR_HELLO_TIME
	iflaBrMaxAge        = 3  // IFLA_BR_MAX_AGE
	iflaBrAgeingTime    = 4  // IFLA_BR_AGEING_TIME
	iflaBrSTPState      = 5  // IFLA_BR_STP_STATE
	iflaBrPriority      = 6  // IFLA_BR_PRIORITY
	iflaBrVLANFiltering = 7  // IFLA_BR_VLAN_FILTERING
	iflaBrMcastSnooping = 23 // IFLA_BR_MCAST_SNOOPING

	iflaVxlanID        = 1  // IFLA_VXLAN_ID
	iflaVxlanGroup     = 2  // IFLA_VXLAN_GROUP
	iflaVxlanLink      = 3  // IFLA_VXLAN_LINK
	iflaVxlanLocal     = 4  // IFLA_VXLAN_LOCAL
	iflaVxlanTTL       = 5  // IFLA_VXLAN_TTL
	iflaVxlanTOS       = 6  // IFLA_VXLAN_TOS
	iflaVxlanLearning  = 7  // IFLA_VXLAN_LEARNING
	iflaVxlanAgeing    = 8  // IFLA_VXLAN_AGEING
	iflaVxlanLimit     = 9  // IFLA_VXLAN_LIMIT
	iflaVxlanPortRange = 10 // IFLA_VXLAN_PORT_RANGE
	iflaVxlanProxy     = 11 // IFLA_VXLAN_PROXY
	iflaVxlanRSC       = 12 // IFLA_VXLAN_RSC
	iflaVxlanL2Miss    = 13 // IFLA_VXLAN_L2MISS
	iflaVxlanL3Miss    = 14 // IFLA_VXLAN_L3MISS
	iflaVxlanPort      = 15 // IFLA_VXLAN_PORT
	iflaVxlanGroup6    = 16 // IFLA_VXLAN_GROUP6
	iflaVxlanLocal6    = 17 // IFLA_VXLAN_LOCAL6
)

// vethInfoPeer is VETH_INFO_PEER (include/uapi/linux/veth.h), missing from
// golang.org/x/sys/unix.
const vethInfoPeer = 1

// Link kinds (IFLA_INFO_KIND) this package models.
const (
	KindBridge = "bridge"
	KindVxlan  = "vxlan"
	KindVeth   = "veth"
)

// VxlanPort is the IANA VXLAN UDP port. The kernel's default, when
// VxlanInfo.Port is 0, is the historical Linux port 8472.
const VxlanPort = 4789

// LinkInfo is IFLA_LINKINFO: a link's kind and kind-specific data. At most
// one of Bridge, Vxlan, Peer and Data is used, according to Kind.
type LinkInfo struct {
	// Kind is IFLA_INFO_KIND: "bridge", "vxlan", "veth", ...
	Kind string
	// SlaveKind is IFLA_INFO_SLAVE_KIND, reported for enslaved links
	// ("bridge" for a bridge port). Decoded only; its data is skipped.
	SlaveKind string

	// Bridge is the IFLA_INFO_DATA of a bridge (IFLA_BR_*).
	Bridge *BridgeInfo
	// Vxlan is the IFLA_INFO_DATA of a vxlan device (IFLA_VXLAN_*).
	Vxlan *VxlanInfo
	// Peer describes the other end of a veth pair being created
	// (VETH_INFO_PEER: an ifinfomsg and the peer's attributes): its Name,
	// and optionally NetNSFD, MTU, Address, TxQLen... The kernel never
	// reports it; read the peer back through IFLA_LINK and IFLA_LINK_NETNSID.
	Peer *LinkMessage
	// Data is the raw IFLA_INFO_DATA of other kinds (copied when decoding;
	// sent as is when no typed field is set).
	Data []byte
}

// BridgeInfo is the bridge-specific data (IFLA_BR_*). When creating a
// bridge, a field is sent only when non-zero; zero keeps the kernel default.
// Times are in hundredths of a second (USER_HZ clock ticks), as the kernel
// reports them.
type BridgeInfo struct {
	ForwardDelay      uint32 // IFLA_BR_FORWARD_DELAY (default 1500)
	HelloTime         uint32 // IFLA_BR_HELLO_TIME (default 200)
	MaxAge            uint32 // IFLA_BR_MAX_AGE (default 2000)
	AgeingTime        uint32 // IFLA_BR_AGEING_TIME (default 30000)
	STPState          uint32 // IFLA_BR_STP_STATE (0 off)
	Priority          uint16 // IFLA_BR_PRIORITY (default 32768)
	VlanFiltering     bool   // IFLA_BR_VLAN_FILTERING
	MulticastSnooping bool   // IFLA_BR_MCAST_SNOOPING (decoded; sent only when true)
}

// VxlanInfo is the vxlan-specific data (IFLA_VXLAN_*).
//
// Encoding, chosen so that a struct literal means what it says: ID and
// Learning are always sent (false turns learning OFF, whereas the kernel's
// default when the attribute is absent is on); Proxy, RSC, L2Miss and L3Miss
// are sent when true (false is the kernel default); every other field is sent
// when non-zero, and zero keeps the kernel default (Port 0 means 8472, Ageing
// 0 means 300 s). The kernel refuses to change ID, Port, Proxy, RSC, L2Miss
// or L3Miss of an existing device (EOPNOTSUPP): recreate it instead.
type VxlanInfo struct {
	ID       uint32     // IFLA_VXLAN_ID: the VNI, below 1<<24
	Port     uint16     // IFLA_VXLAN_PORT: UDP destination port (VxlanPort is 4789)
	Local    netip.Addr // IFLA_VXLAN_LOCAL / LOCAL6: source address of the tunnel
	Group    netip.Addr // IFLA_VXLAN_GROUP / GROUP6: multicast group or unicast remote
	Dev      int32      // IFLA_VXLAN_LINK: underlay device ifindex (in the creating netns)
	TTL      uint8      // IFLA_VXLAN_TTL (0: the route's hop limit)
	TOS      uint8      // IFLA_VXLAN_TOS
	Learning bool       // IFLA_VXLAN_LEARNING: learn remote MACs from received packets
	Proxy    bool       // IFLA_VXLAN_PROXY: answer ARP/ND from the neighbour table
	RSC      bool       // IFLA_VXLAN_RSC: route short-circuit
	L2Miss   bool       // IFLA_VXLAN_L2MISS: notify userspace of FDB misses
	L3Miss   bool       // IFLA_VXLAN_L3MISS: notify userspace of neighbour misses
	Ageing   uint32     // IFLA_VXLAN_AGEING: seconds before learned FDB entries expire
	Limit    uint32     // IFLA_VXLAN_LIMIT: maximum FDB entries (0: no limit)
	PortLow  uint16     // IFLA_VXLAN_PORT_RANGE: lowest UDP source port
	PortHigh uint16     // IFLA_VXLAN_PORT_RANGE: highest UDP source port
}

func (li *LinkInfo) encode(ae *AttributeEncoder) error {
	info := ae.Begin(iflaLinkInfo)
	if li.Kind != "" {
		ae.String(iflaInfoKind, li.Kind)
	}
	if li.SlaveKind != "" {
		ae.String(iflaInfoSlaveKind, li.SlaveKind)
	}
	switch {
	case li.Vxlan != nil:
		d := ae.Begin(iflaInfoData)
		if err := li.Vxlan.encode(ae); err != nil {
			return err
		}
		ae.End(d)
	case li.Bridge != nil:
		d := ae.Begin(iflaInfoData)
		li.Bridge.encode(ae)
		ae.End(d)
	case li.Peer != nil:
		d := ae.Begin(iflaInfoData)
		// The kernel reads VETH_INFO_PEER as an ifinfomsg followed by
		// attributes, not as a nest; iproute2 sends it unflagged.
		p := ae.BeginUnflagged(vethInfoPeer)
		var err error
		if ae.b, err = li.Peer.AppendBinary(ae.b); err != nil {
			return fmt.Errorf("rtnl: veth peer: %w", err)
		}
		ae.End(p)
		ae.End(d)
	case li.Data != nil:
		ae.Raw(iflaInfoData|AttrNested, li.Data)
	}
	ae.End(info)
	return nil
}

func (li *LinkInfo) decode(b []byte) error {
	var data []byte
	ad := NewAttributeDecoder(b)
	for ad.Next() {
		switch ad.Type() {
		case iflaInfoKind:
			li.Kind = ad.String()
		case iflaInfoSlaveKind:
			li.SlaveKind = ad.String()
		case iflaInfoData:
			data = ad.Bytes()
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rtnl: IFLA_LINKINFO: %w", err)
	}
	if data == nil {
		return nil
	}
	switch li.Kind {
	case KindVxlan:
		li.Vxlan = new(VxlanInfo)
		return li.Vxlan.decode(data)
	case KindBridge:
		li.Bridge = new(BridgeInfo)
		return li.Bridge.decode(data)
	case KindVeth:
		ad := NewAttributeDecoder(data)
		for ad.Next() {
			if ad.Type() == vethInfoPeer {
				li.Peer = new(LinkMessage)
				if err := li.Peer.UnmarshalBinary(ad.Bytes()); err != nil {
					return fmt.Errorf("rtnl: VETH_INFO_PEER: %w", err)
				}
			}
		}
		if err := ad.Err(); err != nil {
			return fmt.Errorf("rtnl: veth IFLA_INFO_DATA: %w", err)
		}
		if li.Peer != nil {
			return nil
		}
	}
	li.Data = append([]byte{}, data...)
	return nil
}

func (v *VxlanInfo) encode(ae *AttributeEncoder) error {
	if v.ID >= 1<<24 {
		return fmt.Errorf("rtnl: vxlan VNI %d does not fit 24 bits", v.ID)
	}
	ae.Uint32(iflaVxlanID, v.ID)
	if v.Port != 0 {
		ae.Uint16BE(iflaVxlanPort, v.Port)
	}
	if v.Local.IsValid() {
		if v.Local.Is4() {
			ae.Addr(iflaVxlanLocal, v.Local)
		} else {
			ae.Addr(iflaVxlanLocal6, v.Local)
		}
	}
	if v.Group.IsValid() {
		if v.Group.Is4() {
			ae.Addr(iflaVxlanGroup, v.Group)
		} else {
			ae.Addr(iflaVxlanGroup6, v.Group)
		}
	}
	if v.Dev != 0 {
		ae.Int32(iflaVxlanLink, v.Dev)
	}
	if v.TTL != 0 {
		ae.Uint8(iflaVxlanTTL, v.TTL)
	}
	if v.TOS != 0 {
		ae.Uint8(iflaVxlanTOS, v.TOS)
	}
	ae.Flag(iflaVxlanLearning, v.Learning)
	for _, f := range [...]struct {
		typ uint16
		on  bool
	}{
		{iflaVxlanProxy, v.Proxy},
		{iflaVxlanRSC, v.RSC},
		{iflaVxlanL2Miss, v.L2Miss},
		{iflaVxlanL3Miss, v.L3Miss},
	} {
		if f.on {
			ae.Flag(f.typ, true)
		}
	}
	if v.Ageing != 0 {
		ae.Uint32(iflaVxlanAgeing, v.Ageing)
	}
	if v.Limit != 0 {
		ae.Uint32(iflaVxlanLimit, v.Limit)
	}
	if v.PortLow != 0 || v.PortHigh != 0 {
		var r [4]byte
		binary.BigEndian.PutUint16(r[0:2], v.PortLow)
		binary.BigEndian.PutUint16(r[2:4], v.PortHigh)
		ae.Raw(iflaVxlanPortRange, r[:])
	}
	return nil
}

func (v *VxlanInfo) decode(b []byte) error {
	ad := NewAttributeDecoder(b)
	for ad.Next() {
		switch ad.Type() {
		case iflaVxlanID:
			v.ID = ad.Uint32()
		case iflaVxlanPort:
			v.Port = ad.Uint16BE()
		case iflaVxlanLocal, iflaVxlanLocal6:
			v.Local = ad.Addr()
		case iflaVxlanGroup, iflaVxlanGroup6:
			v.Group = ad.Addr()
		case iflaVxlanLink:
			v.Dev = ad.Int32()
		case iflaVxlanTTL:
			v.TTL = ad.Uint8()
		case iflaVxlanTOS:
			v.TOS = ad.Uint8()
		case iflaVxlanLearning:
			v.Learning = ad.Flag()
		case iflaVxlanProxy:
			v.Proxy = ad.Flag()
		case iflaVxlanRSC:
			v.RSC = ad.Flag()
		case iflaVxlanL2Miss:
			v.L2Miss = ad.Flag()
		case iflaVxlanL3Miss:
			v.L3Miss = ad.Flag()
		case iflaVxlanAgeing:
			v.Ageing = ad.Uint32()
		case iflaVxlanLimit:
			v.Limit = ad.Uint32()
		case iflaVxlanPortRange:
			if ad.Len() != 4 {
				ad.Fail(fmt.Errorf("rtnl: IFLA_VXLAN_PORT_RANGE has %d bytes, not 4", ad.Len()))
				break
			}
			v.PortLow = binary.BigEndian.Uint16(ad.Bytes()[0:2])
			v.PortHigh = binary.BigEndian.Uint16(ad.Bytes()[2:4])
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rtnl: vxlan data: %w", err)
	}
	return nil
}

func (br *BridgeInfo) encode(ae *AttributeEncoder) {
	for _, f := range [...]struct {
		typ uint16
		v   uint32
	}{
		{iflaBrForwardDelay, br.ForwardDelay},
		{iflaBrHelloTime, br.HelloTime},
		{iflaBrMaxAge, br.MaxAge},
		{iflaBrAgeingTime, br.AgeingTime},
		{iflaBrSTPState, br.STPState},
	} {
		if f.v != 0 {
			ae.Uint32(f.typ, f.v)
		}
	}
	if br.Priority != 0 {
		ae.Uint16(iflaBrPriority, br.Priority)
	}
	if br.VlanFiltering {
		ae.Flag(iflaBrVLANFiltering, true)
	}
	if br.MulticastSnooping {
		ae.Flag(iflaBrMcastSnooping, true)
	}
}

func (br *BridgeInfo) decode(b []byte) error {
	ad := NewAttributeDecoder(b)
	for ad.Next() {
		switch ad.Type() {
		case iflaBrForwardDelay:
			br.ForwardDelay = ad.Uint32()
		case iflaBrHelloTime:
			br.HelloTime = ad.Uint32()
		case iflaBrMaxAge:
			br.MaxAge = ad.Uint32()
		case iflaBrAgeingTime:
			br.AgeingTime = ad.Uint32()
		case iflaBrSTPState:
			br.STPState = ad.Uint32()
		case iflaBrPriority:
			br.Priority = ad.Uint16()
		case iflaBrVLANFiltering:
			br.VlanFiltering = ad.Flag()
		case iflaBrMcastSnooping:
			br.MulticastSnooping = ad.Flag()
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rtnl: bridge data: %w", err)
	}
	return nil
}

// NewBridge returns a request to create a bridge named name.
func NewBridge(name string) *LinkMessage {
	return &LinkMessage{Name: name, Info: &LinkInfo{Kind: KindBridge}}
}

// NewVxlan returns a request to create a vxlan device named name with the
// given data (see VxlanInfo for what is sent). Set NetNSFD on the result to
// create it in another namespace: its UDP socket, Local and Dev stay in the
// namespace the request is sent from.
func NewVxlan(name string, info VxlanInfo) *LinkMessage {
	return &LinkMessage{Name: name, Info: &LinkInfo{Kind: KindVxlan, Vxlan: &info}}
}

// NewVethPair returns a request to create a veth pair: name on this side,
// peer on the other (peer.Name, and optionally peer.NetNSFD to create it
// directly in another namespace, peer.MTU, peer.Address...). Set MTU and
// NetNSFD on the result for this side.
func NewVethPair(name string, peer LinkMessage) *LinkMessage {
	return &LinkMessage{Name: name, Info: &LinkInfo{Kind: KindVeth, Peer: &peer}}
}
