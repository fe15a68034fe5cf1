package registry

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// Reason says why a record, or an entry of a store that should hold one, is
// rejected: the record is skipped by every user of the node's records
// (resolver, change feed, VTEP allowlist, reconcile, status).
type Reason uint8

// Reasons a record is rejected. Their text (String) is the reason label of
// the overlayd_records_rejected_total metric.
const (
	// ReasonMalformed: a key or value that is not the text of an address
	// (or a MAC) in its canonical form.
	ReasonMalformed Reason = iota + 1
	// ReasonOversized: a value longer than any record's (MaxValueLen).
	ReasonOversized
	// ReasonUnreadable: an entry that is not a value at all (in the
	// directory store, a symbolic link, a directory, a FIFO...).
	ReasonUnreadable
	// ReasonVTEPFamily: a VTEP of another address family than the
	// underlay's.
	ReasonVTEPFamily
	// ReasonVTEPLoopback: a loopback VTEP (127.0.0.0/8, ::1).
	ReasonVTEPLoopback
	// ReasonVTEPUnspecified: the VTEP 0.0.0.0 or ::.
	ReasonVTEPUnspecified
	// ReasonVTEPMulticast: a multicast VTEP.
	ReasonVTEPMulticast
	// ReasonVTEPBroadcast: the VTEP 255.255.255.255, or the broadcast
	// address of the underlay subnet.
	ReasonVTEPBroadcast
	// ReasonVTEPInOverlay: a VTEP inside the overlay subnet (a container's
	// address, not a node's).
	ReasonVTEPInOverlay
	// ReasonMACNotUnicast: a multicast (broadcast included) or all-zero MAC.
	ReasonMACNotUnicast
	// ReasonIPOutsideSubnet: an IP outside the overlay subnet.
	ReasonIPOutsideSubnet
	// ReasonIPNetwork: the overlay subnet's network address.
	ReasonIPNetwork
	// ReasonIPBroadcast: the overlay subnet's broadcast address.
	ReasonIPBroadcast
	// ReasonIPGateway: the overlay's gateway (the bridge's address on every
	// node).
	ReasonIPGateway
	// ReasonVTEPLinkLocal: an IPv6 link-local VTEP (fe80::/10), which an
	// FDB entry cannot reach without naming a device.
	ReasonVTEPLinkLocal
	// ReasonVTEPOutsideTunnel: in an encrypted overlay, a VTEP outside the
	// tunnel subnet (VXLAN runs between tunnel addresses only).
	ReasonVTEPOutsideTunnel
	// ReasonEndpoint: a member's WireGuard endpoint that is no unicast
	// underlay address (another family, loopback, unspecified, multicast,
	// broadcast, or inside the overlay or tunnel subnet).
	ReasonEndpoint

	reasonEnd
)

// reasonNames are the reasons' texts, by value.
func reasonNames() [reasonEnd]string {
	return [reasonEnd]string{"", "malformed", "oversized", "unreadable", "vtep_family", "vtep_loopback", "vtep_unspecified",
		"vtep_multicast", "vtep_broadcast", "vtep_in_overlay", "mac_not_unicast", "ip_outside_subnet", "ip_network",
		"ip_broadcast", "ip_gateway", "vtep_link_local", "vtep_outside_tunnel", "endpoint"}
}

// String names r as the metric's reason label does ("vtep_loopback").
func (r Reason) String() string {
	if r > 0 && r < reasonEnd {
		return reasonNames()[r]
	}
	return "Reason(" + strconv.Itoa(int(r)) + ")"
}

// Reasons returns every Reason, in order.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonEnd-1)
	for r := ReasonMalformed; r < reasonEnd; r++ {
		out = append(out, r)
	}
	return out
}

// MaxValueLen bounds a record's value in a store: a MAC or an address and a
// newline. A longer value is no record (ReasonOversized), and is not read on.
const MaxValueLen = 128

// ErrRejected is matched by a Rejected: a lookup's answer that is no record
// a node may use.
var ErrRejected = errors.New("registry: record rejected")

// Rejected is an entry of a store that is no record a node may use: Key
// names it, as the store lays records out ("arp/198.51.100.9",
// "fdb/02:42:c6:33:64:09", "nodes/192.0.2.7"; the entry's name in the store
// for one that names no address), Reason says why. It is the error of a
// lookup that meets such an entry (it matches ErrRejected), and what stores
// report of them beside a listing (RejectLister) or on their change feed
// (ChangeRejected). Its text holds the key, bounded (LogKey), never the
// value.
type Rejected struct {
	Key    string
	Reason Reason
}

// Error says which key was rejected and why.
func (r Rejected) Error() string {
	return "registry: " + LogKey(r.Key) + ": rejected (" + r.Reason.String() + ")"
}

// Is makes a Rejected match ErrRejected.
func (r Rejected) Is(target error) bool { return target == ErrRejected }

// maxKeyText is how much of a key LogKey keeps.
const maxKeyText = 64

// LogKey returns key fit for a log line or an error: cut to 64 bytes, with
// the length of what was cut said. A key of a store is whatever its writer
// made it (an etcd key may be over a megabyte).
func LogKey(key string) string {
	if len(key) <= maxKeyText {
		return key
	}
	return key[:maxKeyText] + "...(" + strconv.Itoa(len(key)) + " bytes)"
}

// Keys of a record's two halves, as both stores lay them out.
func arpKey(ip netip.Addr) string    { return "arp/" + ip.String() }
func fdbKey(m ethaddr.MAC) string    { return "fdb/" + m.String() }
func nodeKey(vtep netip.Addr) string { return "nodes/" + vtep.String() }
func spanKey(s Span) string          { return "spans/" + s.Prefix.String() }

// Policy is what a record must be for a node to use it: the same for its
// resolver, its change feed, its VTEP allowlist, its reconcile passes and
// status. A record is two halves, as the stores keep them: arp/IP holding
// a MAC (CheckARP) and fdb/MAC holding a VTEP (CheckFDB).
//
//   - the IP: inside the overlay subnet, and not its network address, its
//     broadcast address or the gateway; an IPv6 IP inside the overlay's
//     IPv6 prefix, and not its subnet-router anycast address (the prefix's
//     first) or the IPv6 gateway;
//   - the MAC: unicast, not all zeros;
//   - the VTEP: a unicast address of the underlay's family, not loopback,
//     unspecified, multicast, 255.255.255.255 or the underlay subnet's
//     broadcast address, and not inside the overlay subnet or its IPv6
//     prefix.
//
// The zero Policy checks only what needs no configuration (MAC, VTEP
// unicast and IPv4).
type Policy struct {
	// Subnet is the overlay subnet (198.51.100.0/24); invalid: IPs are not
	// checked against a subnet.
	Subnet netip.Prefix
	// Gateway is the overlay's gateway address, the bridge's on every node
	// (198.51.100.1); invalid: none.
	Gateway netip.Addr
	// Subnet6 is the overlay's IPv6 prefix (2001:db8:42::/64) on a
	// dual-stack overlay. Invalid: an IPv6 IP is outside the overlay when
	// Subnet is valid (an IPv4 overlay), not checked against a prefix when
	// neither is.
	Subnet6 netip.Prefix
	// Gateway6 is the overlay's IPv6 gateway address (2001:db8:42::1);
	// invalid: none.
	Gateway6 netip.Addr
	// Underlay is this node's VTEP with the prefix length of its underlay
	// subnet (192.0.2.2/24), or as a single address when that is not
	// known. Every VTEP must be of its family (IPv4 when invalid); its
	// subnet's broadcast address is refused. In an encrypted overlay the
	// VTEPs are tunnel addresses: Underlay is then the tunnel subnet.
	Underlay netip.Prefix
	// Tunnel, in an encrypted overlay, is the tunnel subnet: every VTEP
	// must be inside it. Invalid: no such check.
	Tunnel netip.Prefix
	// Endpoints, in an encrypted overlay, is this node's underlay address
	// with its subnet's prefix length (or alone): members' WireGuard
	// endpoints must be of its family, and not its subnet's broadcast
	// address.
	Endpoints netip.Prefix
}

// Check checks both halves of r. A record whose MAC has no VTEP yet
// (r.VTEP invalid: arp/IP written, fdb/MAC not yet) is checked on its IP
// and MAC only.
func (p Policy) Check(r Record) (Reason, error) {
	if why, err := p.CheckARP(r.IP, r.MAC); err != nil {
		return why, err
	}
	if !r.VTEP.IsValid() {
		return 0, nil
	}
	return p.CheckFDB(r.MAC, r.VTEP)
}

// Accepts says whether the policy accepts r (Check).
func (p Policy) Accepts(r Record) bool {
	_, err := p.Check(r)
	return err == nil
}

// CheckARP checks the half arp/ip holding mac.
func (p Policy) CheckARP(ip netip.Addr, mac ethaddr.MAC) (Reason, error) {
	if why, err := p.CheckIP(ip); err != nil {
		return why, err
	}
	return p.CheckMAC(mac)
}

// CheckFDB checks the half fdb/mac holding vtep.
func (p Policy) CheckFDB(mac ethaddr.MAC, vtep netip.Addr) (Reason, error) {
	if why, err := p.CheckMAC(mac); err != nil {
		return why, err
	}
	return p.CheckVTEP(vtep)
}

// CheckIP checks a container's IP.
func (p Policy) CheckIP(ip netip.Addr) (Reason, error) {
	if err := CheckKeyIP(ip); err != nil {
		return ReasonMalformed, err
	}
	if ip.Is6() {
		return p.checkIP6(ip)
	}
	subnet := p.Subnet.Masked()
	switch {
	case ip == p.Gateway:
		return ReasonIPGateway, fmt.Errorf("registry: IP %s is the overlay's gateway", ip)
	case !subnet.IsValid():
		return 0, nil
	case !subnet.Contains(ip):
		return ReasonIPOutsideSubnet, fmt.Errorf("registry: IP %s is outside the overlay subnet %s", ip, subnet)
	case ip == subnet.Addr() && hasBroadcast(subnet):
		return ReasonIPNetwork, fmt.Errorf("registry: IP %s is the overlay subnet's network address", ip)
	case ip == broadcast(subnet) && hasBroadcast(subnet):
		return ReasonIPBroadcast, fmt.Errorf("registry: IP %s is the overlay subnet's broadcast address", ip)
	}
	return 0, nil
}

// checkIP6 checks a container's IPv6 address against the overlay's IPv6
// prefix.
func (p Policy) checkIP6(ip netip.Addr) (Reason, error) {
	prefix := p.Subnet6.Masked()
	switch {
	case ip == p.Gateway6:
		return ReasonIPGateway, fmt.Errorf("registry: IP %s is the overlay's IPv6 gateway", ip)
	case !prefix.IsValid() && p.Subnet.IsValid():
		return ReasonIPOutsideSubnet, fmt.Errorf("registry: IP %s is IPv6 and the overlay has no IPv6 prefix", ip)
	case !prefix.IsValid():
		return 0, nil
	case !prefix.Contains(ip):
		return ReasonIPOutsideSubnet, fmt.Errorf("registry: IP %s is outside the overlay's IPv6 prefix %s", ip, prefix)
	case ip == prefix.Addr():
		return ReasonIPNetwork, fmt.Errorf("registry: IP %s is the overlay prefix's subnet-router anycast address", ip)
	}
	return 0, nil
}

// CheckMAC checks a container's MAC: unicast, not all zeros.
func (p Policy) CheckMAC(m ethaddr.MAC) (Reason, error) {
	if err := ValidateMAC(m); err != nil {
		return ReasonMACNotUnicast, err
	}
	return 0, nil
}

// CheckVTEP checks a node's underlay address.
func (p Policy) CheckVTEP(v netip.Addr) (Reason, error) {
	want4 := !p.Underlay.IsValid() || p.Underlay.Addr().Is4()
	switch {
	case !v.IsValid() || v.Zone() != "" || v.Is4In6():
		return ReasonMalformed, fmt.Errorf("registry: VTEP %q is not the canonical text of an address", v.String())
	case v.Is4() != want4:
		return ReasonVTEPFamily, fmt.Errorf("registry: VTEP %s is not of the underlay's address family", v)
	case v.IsLoopback():
		return ReasonVTEPLoopback, fmt.Errorf("registry: VTEP %s is a loopback address", v)
	case v.IsUnspecified():
		return ReasonVTEPUnspecified, fmt.Errorf("registry: VTEP %s is the unspecified address", v)
	case v.IsMulticast():
		return ReasonVTEPMulticast, fmt.Errorf("registry: VTEP %s is a multicast address", v)
	case v == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ReasonVTEPBroadcast, fmt.Errorf("registry: VTEP %s is the broadcast address", v)
	case p.Underlay.IsValid() && hasBroadcast(p.Underlay) && v == broadcast(p.Underlay.Masked()):
		return ReasonVTEPBroadcast, fmt.Errorf("registry: VTEP %s is the underlay subnet's broadcast address", v)
	case holds(p.Subnet, v):
		return ReasonVTEPInOverlay, fmt.Errorf("registry: VTEP %s is inside the overlay subnet %s", v, p.Subnet.Masked())
	case holds(p.Subnet6, v):
		return ReasonVTEPInOverlay, fmt.Errorf("registry: VTEP %s is inside the overlay's IPv6 prefix %s", v, p.Subnet6.Masked())
	case v.Is6() && v.IsLinkLocalUnicast():
		return ReasonVTEPLinkLocal, fmt.Errorf("registry: VTEP %s is IPv6 link-local: no node's underlay address", v)
	case p.Tunnel.IsValid() && !p.Tunnel.Masked().Contains(v):
		return ReasonVTEPOutsideTunnel, fmt.Errorf("registry: VTEP %s is outside the tunnel subnet %s", v, p.Tunnel.Masked())
	}
	return 0, nil
}

// CheckMember checks a member record (Member.Validate): its VTEP as
// CheckVTEP does, and its endpoint: a unicast address of the underlay's
// family (Endpoints'), not loopback, unspecified, multicast, the broadcast
// address, nor inside the overlay's subnets or the tunnel subnet.
func (p Policy) CheckMember(m Member) (Reason, error) {
	if err := m.Validate(); err != nil {
		return ReasonMalformed, err
	}
	if why, err := p.CheckVTEP(m.VTEP); err != nil {
		return why, err
	}
	e := m.Endpoint.Addr()
	want4 := !p.Endpoints.IsValid() || p.Endpoints.Addr().Is4()
	bad := func(what string) (Reason, error) {
		return ReasonEndpoint, fmt.Errorf("registry: member %s: endpoint %s %s", m.VTEP, m.Endpoint, what)
	}
	switch {
	case e.Is4() != want4:
		return bad("is not of the underlay's address family")
	case e.IsLoopback(), e.IsUnspecified(), e.IsMulticast(), e == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return bad("is not a unicast address")
	case p.Endpoints.IsValid() && hasBroadcast(p.Endpoints) && e == broadcast(p.Endpoints.Masked()):
		return bad("is the underlay subnet's broadcast address")
	case holds(p.Subnet, e):
		return bad("is inside the overlay subnet")
	case holds(p.Subnet6, e):
		return bad("is inside the overlay's IPv6 prefix")
	case holds(p.Tunnel, e):
		return bad("is inside the tunnel subnet")
	}
	return 0, nil
}

// CheckSpan checks a span (a node's address block): a network prefix
// inside the overlay subnet, at a VTEP CheckVTEP accepts. Its addresses are then every IP of the prefix
// CheckIP accepts.
func (p Policy) CheckSpan(s Span) (Reason, error) {
	if err := s.Validate(); err != nil {
		return ReasonMalformed, err
	}
	if subnet := p.Subnet.Masked(); subnet.IsValid() && (s.Prefix.Bits() < subnet.Bits() || !subnet.Contains(s.Prefix.Addr())) {
		return ReasonIPOutsideSubnet, fmt.Errorf("registry: span %s of node %q is not inside the overlay subnet %s", s.Prefix, s.Node, subnet)
	}
	return p.CheckVTEP(s.VTEP)
}

// hasBroadcast says whether an IPv4 subnet has network and broadcast
// addresses apart from its hosts' (not /31, RFC 3021, nor /32).
func hasBroadcast(p netip.Prefix) bool { return p.Addr().Is4() && p.Bits() <= 30 }

// broadcast is the last address of an IPv4 subnet.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// holds says whether the network of prefix p (unset: none) holds a,
// allocating nothing (an unset prefix's Masked builds an error).
func holds(p netip.Prefix, a netip.Addr) bool {
	return p.IsValid() && p.Masked().Contains(a)
}
