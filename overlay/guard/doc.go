// Package guard keeps strangers off an overlay: the VTEP allowlist (VXLAN
// for the overlay's port accepted only from the underlay addresses of the
// overlay's registered nodes) and per-port anti-spoofing (a container's
// frames carry its own MAC, and its IPv4 packets and ARP messages its own
// address). Both are nftables tables of overlaynet's own (overlay/nft),
// named "overlaynet-guard":
//
//   - inet overlaynet-guard, in the node's own ("host") namespace, where
//     the vxlan device's UDP socket receives (a vxlan's socket lives in the
//     namespace it was created in, which create does from the host): a set
//     "vteps" of allowed addresses, changed in place as the registry
//     changes, and one input rule `meta l4proto udp udp dport PORT ip saddr
//     != @vteps counter drop`. Packets merely routed through the node are
//     not looked at (input hook).
//   - bridge overlaynet-guard, in the overlay namespace: a base chain
//     "ports" (bridge prerouting, before the bridge forwards anything,
//     locally or to the vxlan) dispatching each container port by name to
//     a chain of its own, "port-HOSTIF", whose rules drop and count, by
//     reason, frames with another source MAC, ARP with another sender
//     MAC or address, IPv4 with another source address, any other
//     ethertype, and for a port with an IPv6 address the IPv6 guard
//     (antispoof6.go): another IPv6 source, Neighbor Advertisements or
//     duplicate address probes for another's address, Neighbor Discovery
//     naming another MAC, Router Advertisements, redirects and DHCPv6
//     server messages.
//
// Anti-spoofing is in the bridge family rather than on a netdev ingress
// hook of each veth: rules match the port by name, so they do not depend on
// the device existing (a netdev chain is bound to a device and goes, or
// goes dormant, with it), a port's rules are installed before its veth is
// on the bridge and are removed, alone, by tag and chain name when it is
// detached; a re-attach under the same name finds nothing stale.
//
// Sensible exceptions, documented for the user: ARP probes (sender address
// 0.0.0.0, RFC 5227 duplicate address detection) pass; DHCP does not (a
// container's address is given by attach, a DHCP client's 0.0.0.0 source is
// dropped); IPv6 is dropped at the port of a container without an IPv6
// address (an IPv4 overlay's). A container with one may also send from the
// link-local address its MAC gives (attach makes none, but it names the
// port alone), and from :: as ICMPv6 to a multicast group (MLD reports,
// duplicate address probes of its own addresses).
package guard
