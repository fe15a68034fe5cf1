package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Route attributes (RTA_*, include/uapi/linux/rtnetlink.h).
const (
	rtaDst      = 1  // RTA_DST
	rtaSrc      = 2  // RTA_SRC
	rtaIIF      = 3  // RTA_IIF
	rtaOIF      = 4  // RTA_OIF
	rtaGateway  = 5  // RTA_GATEWAY
	rtaPriority = 6  // RTA_PRIORITY
	rtaPrefSrc  = 7  // RTA_PREFSRC
	rtaTable    = 15 // RTA_TABLE
)

// Routing tables (RT_TABLE_*).
const (
	routeTableUnspec = 0 // RT_TABLE_UNSPEC
	// RouteTableMain is the main table (RT_TABLE_MAIN), the one `ip route`
	// shows.
	RouteTableMain = 254
)

// RouteProtocol is the origin of a route (rtm_protocol, RTPROT_*).
type RouteProtocol uint8

// Route protocols (RTPROT_*).
const (
	ProtoUnspec   RouteProtocol = 0  // RTPROT_UNSPEC
	ProtoRedirect RouteProtocol = 1  // RTPROT_REDIRECT
	ProtoKernel   RouteProtocol = 2  // RTPROT_KERNEL
	ProtoBoot     RouteProtocol = 3  // RTPROT_BOOT
	ProtoStatic   RouteProtocol = 4  // RTPROT_STATIC
	ProtoDHCP     RouteProtocol = 16 // RTPROT_DHCP
)

// String returns the protocol as iproute2 names it ("kernel", "static").
func (p RouteProtocol) String() string {
	switch p {
	case ProtoUnspec:
		return "unspec"
	case ProtoRedirect:
		return "redirect"
	case ProtoKernel:
		return "kernel"
	case ProtoBoot:
		return "boot"
	case ProtoStatic:
		return "static"
	case ProtoDHCP:
		return "dhcp"
	}
	return fmt.Sprintf("RouteProtocol(%d)", uint8(p))
}

// RouteType is a route's type (rtm_type, RTN_*).
type RouteType uint8

// Route types (RTN_*).
const (
	RouteUnspec      RouteType = 0  // RTN_UNSPEC
	RouteUnicast     RouteType = 1  // RTN_UNICAST
	RouteLocal       RouteType = 2  // RTN_LOCAL
	RouteBroadcast   RouteType = 3  // RTN_BROADCAST
	RouteAnycast     RouteType = 4  // RTN_ANYCAST
	RouteMulticast   RouteType = 5  // RTN_MULTICAST
	RouteBlackhole   RouteType = 6  // RTN_BLACKHOLE
	RouteUnreachable RouteType = 7  // RTN_UNREACHABLE
	RouteProhibit    RouteType = 8  // RTN_PROHIBIT
	RouteThrow       RouteType = 9  // RTN_THROW
	RouteNAT         RouteType = 10 // RTN_NAT
)

var routeTypeNames = [...]string{
	"unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole",
	"unreachable", "prohibit", "throw", "nat",
}

// String returns the type as iproute2 names it ("unicast", "local").
func (t RouteType) String() string {
	if int(t) < len(routeTypeNames) {
		return routeTypeNames[t]
	}
	return fmt.Sprintf("RouteType(%d)", uint8(t))
}

// RouteMessage is an rtnetlink route message: struct rtmsg and the RTA_*
// attributes overlaynet uses. A zero field is not sent; attributes the type
// does not model (metrics, multipath, cache info) are skipped when decoding.
type RouteMessage struct {
	Family   uint8         // rtm_family: AF_INET or AF_INET6
	DstLen   uint8         // rtm_dst_len: prefix length of Dst (0: default route)
	SrcLen   uint8         // rtm_src_len
	TOS      uint8         // rtm_tos
	Protocol RouteProtocol // rtm_protocol
	Scope    Scope         // rtm_scope
	Type     RouteType     // rtm_type
	Flags    uint32        // rtm_flags (RTNH_F_*, RTM_F_*)

	// Table is the routing table: rtm_table, widened by RTA_TABLE, which is
	// sent only for ids above 255 (0 in a request means main).
	Table uint32

	Dst      netip.Addr // RTA_DST
	Src      netip.Addr // RTA_SRC
	Gateway  netip.Addr // RTA_GATEWAY
	PrefSrc  netip.Addr // RTA_PREFSRC
	OIF      int32      // RTA_OIF: output link
	IIF      int32      // RTA_IIF: input link
	Priority uint32     // RTA_PRIORITY: the metric
}

// Destination returns Dst with DstLen as a prefix; for a default route
// (no Dst) it returns 0.0.0.0/0 or ::/0 by Family.
func (m *RouteMessage) Destination() netip.Prefix {
	if m.Dst.IsValid() {
		return netip.PrefixFrom(m.Dst, int(m.DstLen))
	}
	if m.Family == FamilyInet6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

// NewRoute returns a request for a unicast route to dst in the main table,
// with protocol static. With a valid gw the route goes via gw (oif may be 0
// to let the kernel find the link) and has global scope; without, it is a
// link-scope route to dst out of oif. An invalid dst (netip.Prefix{}) means
// the default route of gw's family.
func NewRoute(dst netip.Prefix, gw netip.Addr, oif int32) *RouteMessage {
	m := &RouteMessage{
		Protocol: ProtoStatic, Type: RouteUnicast, Table: RouteTableMain,
		Gateway: gw.Unmap(), OIF: oif,
	}
	fam := gw.Unmap()
	if dst.IsValid() {
		dst = dst.Masked()
		fam = dst.Addr().Unmap()
		m.DstLen = uint8(dst.Bits())
		if dst.Bits() > 0 {
			m.Dst = fam
		}
	}
	m.Family = FamilyInet
	if fam.Is6() {
		m.Family = FamilyInet6
	}
	if !gw.IsValid() {
		m.Scope = ScopeLink
	}
	return m
}

// NewDefaultRoute returns a request for the default route via gw.
func NewDefaultRoute(gw netip.Addr) *RouteMessage { return NewRoute(netip.Prefix{}, gw, 0) }

// NewDeviceRoute returns a request for a link-scope route to dst out of oif
// (`ip route add DST dev LINK`).
func NewDeviceRoute(dst netip.Prefix, oif int32) *RouteMessage {
	return NewRoute(dst, netip.Addr{}, oif)
}

// MarshalBinary encodes m as an rtmsg followed by its attributes.
func (m *RouteMessage) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the encoding of m to b.
func (m *RouteMessage) AppendBinary(b []byte) ([]byte, error) {
	table := uint8(routeTableUnspec)
	if m.Table < 256 {
		table = uint8(m.Table)
	}
	b = append(b, m.Family, m.DstLen, m.SrcLen, m.TOS, table, uint8(m.Protocol), uint8(m.Scope), uint8(m.Type))
	b = binary.NativeEndian.AppendUint32(b, m.Flags)
	ae := NewAttributeEncoder(b)
	for _, a := range [...]struct {
		typ  uint16
		addr netip.Addr
	}{
		{rtaDst, m.Dst}, {rtaSrc, m.Src}, {rtaGateway, m.Gateway}, {rtaPrefSrc, m.PrefSrc},
	} {
		if a.addr.IsValid() {
			ae.Addr(a.typ, a.addr)
		}
	}
	if m.OIF != 0 {
		ae.Int32(rtaOIF, m.OIF)
	}
	if m.IIF != 0 {
		ae.Int32(rtaIIF, m.IIF)
	}
	if m.Priority != 0 {
		ae.Uint32(rtaPriority, m.Priority)
	}
	if m.Table > 255 {
		ae.Uint32(rtaTable, m.Table)
	}
	return ae.Bytes(), nil
}

var errShortRtmsg = errors.New("rtnl: route message shorter than struct rtmsg")

// UnmarshalBinary decodes an rtmsg and its attributes into m, replacing its
// contents. It never panics; malformed input yields an error.
func (m *RouteMessage) UnmarshalBinary(b []byte) error {
	*m = RouteMessage{}
	if len(b) < rtmsgLen {
		return errShortRtmsg
	}
	m.Family, m.DstLen, m.SrcLen, m.TOS = b[0], b[1], b[2], b[3]
	m.Table = uint32(b[4])
	m.Protocol, m.Scope, m.Type = RouteProtocol(b[5]), Scope(b[6]), RouteType(b[7])
	m.Flags = binary.NativeEndian.Uint32(b[8:12])
	ad := NewAttributeDecoder(b[rtmsgLen:])
	for ad.Next() {
		switch ad.Type() {
		case rtaDst:
			m.Dst = ad.Addr()
		case rtaSrc:
			m.Src = ad.Addr()
		case rtaGateway:
			m.Gateway = ad.Addr()
		case rtaPrefSrc:
			m.PrefSrc = ad.Addr()
		case rtaOIF:
			m.OIF = ad.Int32()
		case rtaIIF:
			m.IIF = ad.Int32()
		case rtaPriority:
			m.Priority = ad.Uint32()
		case rtaTable:
			m.Table = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return fmt.Errorf("rtnl: route: %w", err)
	}
	return nil
}
