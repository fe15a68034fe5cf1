package overlay

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
)

// Overlay is a node's overlay as Create built it (and the state directory
// remembers it).
type Overlay struct {
	// Config is the configuration the overlay was created with.
	Config Config `json:"config"`
	// VTEP is this node's underlay address, registered for its containers.
	VTEP netip.Addr `json:"vtep"`
	// VTEPSource explains how VTEP was chosen: "--local", "address of --dev
	// eth1" or "source of the default route via eth0".
	VTEPSource string `json:"vtep_source"`
	// UnderlayDev is the underlay device (in the host namespace).
	UnderlayDev string `json:"underlay_dev"`
	// UnderlayMTU is the underlay device's MTU; Config.MTU must not exceed
	// UnderlayMTU - VXLANOverhead (less WireGuard's too when encrypted).
	UnderlayMTU uint32 `json:"underlay_mtu"`
	// UnderlayAddr, in an encrypted overlay, is this node's underlay
	// address (its WireGuard endpoint's), chosen as VTEPSource says; VTEP
	// is then its tunnel address. Invalid otherwise: VTEP is the underlay
	// address.
	UnderlayAddr netip.Addr `json:"underlay_addr,omitzero"`
	// Tunnel is an encrypted overlay's WireGuard side (nil without).
	Tunnel *Tunnel `json:"tunnel,omitempty"`
}

// Underlay returns this node's underlay address: UnderlayAddr in an
// encrypted overlay, else the VTEP.
func (ov *Overlay) Underlay() netip.Addr {
	if ov.UnderlayAddr.IsValid() {
		return ov.UnderlayAddr
	}
	return ov.VTEP
}

// Mismatch is one setting that differs between what Create was asked for
// and what exists.
type Mismatch struct {
	// Device is the device that differs, "state" for the state
	// directory's record, or "store" (StoreDevice) for the network every
	// node agreed on in the registry.
	Device string `json:"device"`
	// Field names the setting: "VNI", "port", "kind", "proxy", ...
	Field string `json:"field"`
	// Want is the requested value.
	Want string `json:"want"`
	// Have is the existing value.
	Have string `json:"have"`
}

// MismatchError is returned by Create when a device (or the state
// directory, or the network recorded in the registry) exists with different
// settings. Nothing was changed.
type MismatchError struct {
	// Mismatches lists every differing setting.
	Mismatches []Mismatch `json:"mismatches"`
}

// Error lists each mismatch as "device FIELD: want W, have H".
func (e *MismatchError) Error() string {
	var b strings.Builder
	local, store := false, false
	for _, m := range e.Mismatches {
		if m.Device == StoreDevice {
			store = true
		} else {
			local = true
		}
	}
	switch {
	case store && !local:
		b.WriteString("overlay: this node's overlay differs from the one every node agreed on in the store (nothing changed): ")
	case store:
		b.WriteString("overlay: existing overlay and the store's agreed one differ (nothing changed; run reset to rebuild): ")
	default:
		b.WriteString("overlay: existing overlay differs (nothing changed; run reset to rebuild): ")
	}
	for i, m := range e.Mismatches {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s: want %s, have %s", m.Device, m.Field, m.Want, m.Have)
	}
	return b.String()
}

// Is makes a difference with the store's network match ErrConflict.
func (e *MismatchError) Is(target error) bool {
	if target != registry.ErrConflict {
		return false
	}
	for _, m := range e.Mismatches {
		if m.Device == StoreDevice {
			return true
		}
	}
	return false
}

// AttachRequest describes a container to attach.
type AttachRequest struct {
	// Name is the container's netns name in NetNSDir, created if missing;
	// with NetNSPath, only the endpoint's name (in the state directory and
	// in HostIfName).
	Name string `json:"name"`
	// NetNSPath, if set, is the path of the container's network namespace,
	// made by a container runtime (CNI_NETNS): it must exist, and Detach
	// leaves it in place.
	NetNSPath string `json:"netns_path,omitempty"`
	// ContainerID and Network identify a runtime's attachment (CNI), if
	// any; they are recorded with the endpoint.
	ContainerID string `json:"container_id,omitempty"`
	Network     string `json:"network,omitempty"`
	// IP is the container's IPv4 address with the overlay's prefix length,
	// e.g. 198.51.100.2/24: inside the overlay subnet, not the gateway, not
	// the network or broadcast address. Invalid (zero) means: allocate one
	// from this node's address blocks (a registry that holds blocks is
	// needed); an explicit address is recorded as allocated if the
	// registry holds blocks, so that it is not handed out twice.
	IP netip.Prefix `json:"ip"`
	// Addr is the container's IPv4 address without a prefix length: it
	// takes the overlay subnet's, as if IP had been given with it. Set IP
	// or Addr, not both.
	Addr netip.Addr `json:"addr,omitzero"`
	// IP6 and Addr6 are the container's IPv6 address on a dual-stack
	// overlay, as IP and Addr are its IPv4 one: inside the overlay's IPv6
	// prefix (with its length), not the gateway or the prefix's
	// subnet-router anycast address, without a zone. Invalid: allocated.
	IP6   netip.Prefix `json:"ip6,omitzero"`
	Addr6 netip.Addr   `json:"addr6,omitzero"`
	// Only, if set (IPv4 or IPv6), gives the container an address of that
	// family alone; zero gives it one of each family the overlay has.
	Only Family `json:"only,omitempty"`
	// MAC of the container's interface; zero means DeriveMAC of its IPv4
	// address (of its IPv6 one when it has none).
	MAC ethaddr.MAC `json:"mac"`
	// IfName is the container's interface name (default "eth0").
	IfName string `json:"ifname"`
}

// DefaultIfName is the container interface name when AttachRequest.IfName
// is empty.
const DefaultIfName = "eth0"

// Endpoint is an attached container.
type Endpoint struct {
	// Name is the container's netns name (the endpoint's name, with NetNS).
	Name string `json:"name"`
	// NetNS is the path of the container's network namespace when a
	// runtime made it (AttachRequest.NetNSPath), else empty.
	NetNS string `json:"netns_path,omitempty"`
	// ContainerID and Network identify a runtime's attachment (CNI).
	ContainerID string `json:"container_id,omitempty"`
	Network     string `json:"network,omitempty"`
	// IP is the container's IPv4 address and prefix; invalid for a
	// container given an IPv6 address only.
	IP netip.Prefix `json:"ip"`
	// IP6 is the container's IPv6 address and prefix on a dual-stack
	// overlay; invalid for a container given an IPv4 address only (and on
	// an IPv4 overlay).
	IP6 netip.Prefix `json:"ip6,omitzero"`
	// MAC is the container interface's MAC.
	MAC ethaddr.MAC `json:"mac"`
	// IfName is the container interface's name.
	IfName string `json:"ifname"`
	// HostIf is the host-side veth's name in the overlay namespace
	// (HostIfName(Name)).
	HostIf string `json:"host_if"`
	// HostIndex is the host-side veth's ifindex in the overlay namespace.
	HostIndex int32 `json:"host_index"`
	// PeerIndex is the container interface's ifindex in its namespace.
	PeerIndex int32 `json:"peer_index"`
	// VTEP is the node's VTEP the container was registered with.
	VTEP netip.Addr `json:"vtep"`
}

// Addrs returns the container's addresses: its IPv4 one, then its IPv6
// one, each if it has it.
func (e *Endpoint) Addrs() []netip.Prefix {
	out := make([]netip.Prefix, 0, 2)
	for _, p := range []netip.Prefix{e.IP, e.IP6} {
		if p.IsValid() {
			out = append(out, p)
		}
	}
	return out
}

// Records returns the registry records of e, one per address (IPv4 first),
// all of its MAC at its VTEP.
func (e *Endpoint) Records() []registry.Record {
	out := make([]registry.Record, 0, 2)
	for _, p := range e.Addrs() {
		out = append(out, registry.Record{IP: p.Addr(), MAC: e.MAC, VTEP: e.VTEP})
	}
	return out
}

// Has says whether ip is one of e's addresses.
func (e *Endpoint) Has(ip netip.Addr) bool {
	return ip.IsValid() && (e.IP.IsValid() && e.IP.Addr() == ip || e.IP6.IsValid() && e.IP6.Addr() == ip)
}

// Network returns the overlay-wide settings of ov, those every node of the
// overlay must share: its configuration's (Config.Network) with the family
// of its underlay, which its VTEP says.
func (ov Overlay) Network() registry.Network {
	n := ov.Config.Network()
	u := ov.Underlay() // an encrypted overlay's VTEP is its tunnel address
	n.Underlay6 = u.IsValid() && FamilyOf(u) == IPv6
	return n
}
