package egress

import (
	"log/slog"
	"net/netip"

	"github.com/overlaynet/overlaynet/internal/steps"
	"github.com/overlaynet/overlaynet/overlay/nft"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Params are the node egress is set up on. Setup, Teardown and Read run in
// the node's host network namespace (the calling thread's).
type Params struct {
	// Host is an rtnetlink connection in the host namespace.
	Host *rtnl.Conn
	// Overlay is an rtnetlink connection in the overlay namespace; nil in
	// Teardown and Read when that namespace is gone.
	Overlay *rtnl.Conn
	// OverlayNS is the overlay namespace (Setup creates the veth's overlay
	// end in it).
	OverlayNS *rtnl.NetNS
	// OverlayNetNS names the overlay namespace (for state and status).
	OverlayNetNS string
	// Subnet is the overlay subnet; Bridge the bridge holding its gateway.
	Subnet netip.Prefix
	Bridge string
	// Subnet6 is the overlay's IPv6 prefix on a dual-stack overlay
	// (invalid: IPv4 only, no IPv6 egress).
	Subnet6 netip.Prefix
	// VTEP is the node's underlay address (the source of the node's route
	// to the overlay), UnderlayDev its device.
	VTEP netip.Addr
	// VTEP6 is the node's VTEP on an IPv6 underlay (invalid on an IPv4
	// one): the source of the node's route to the IPv6 prefix.
	VTEP6       netip.Addr
	UnderlayDev string
	// Log receives progress; nil discards it.
	Log *slog.Logger

	// hook, set by this package's tests, can make Setup fail right after
	// any of its steps.
	hook steps.Hook
}

// HostNetNS is the name State and Status give the node's own namespace.
const HostNetNS = "(host)"

// State is what Setup made and changed, recorded in the node's state
// directory so that Teardown removes exactly that.
type State struct {
	// Config is egress as it was asked for.
	Config Config `json:"config"`
	// Dev is the egress device Setup chose or was given.
	Dev string `json:"dev"`
	// HostIf and OverlayIf are the veth pair's ends.
	HostIf    string `json:"host_if"`
	OverlayIf string `json:"overlay_if"`
	// Link is the link subnet in use; HostAddr and OverlayAddr its ends.
	Link        netip.Prefix `json:"link"`
	HostAddr    netip.Prefix `json:"host_addr"`
	OverlayAddr netip.Prefix `json:"overlay_addr"`
	// CreatedVeth is true if Setup made the veth pair (Teardown deletes it,
	// and with it its addresses and routes).
	CreatedVeth bool `json:"created_veth"`
	// Forwarding lists the forwarding values Setup changed, with the value
	// each had before.
	Forwarding []ForwardingChange `json:"forwarding,omitempty"`
	// CreatedTable is true if Setup made Table().
	CreatedTable bool `json:"created_table"`
	// HostAccept lists the accept rules Setup added to host forward chains.
	HostAccept []HostRules `json:"host_accept,omitempty"`
	// IPv6 is the node path's IPv6 half, on a dual-stack overlay whose
	// IPv6 egress is not Mode6None (nil: none).
	IPv6 *State6 `json:"ipv6,omitempty"`
}

// State6 is what Setup made for IPv6.
type State6 struct {
	// Mode is Mode6Masquerade or Mode6Route.
	Mode Mode6 `json:"mode"`
	// Dev is the device IPv6 leaves by: Config.Dev, else the device of
	// the node's IPv6 default route, else IPv4's egress device.
	Dev string `json:"dev"`
	// HostAddr and OverlayAddr are the path's link-local addresses.
	HostAddr    netip.Prefix `json:"host_addr"`
	OverlayAddr netip.Prefix `json:"overlay_addr"`
	// BridgeAddr is the bridge's link-local address, the source of the
	// overlay namespace's solicitations for the packets it forwards;
	// CreatedBridgeAddr says Setup added it (Teardown removes it).
	BridgeAddr        netip.Prefix `json:"bridge_addr"`
	CreatedBridgeAddr bool         `json:"created_bridge_addr,omitempty"`
	// Src is the node's address its packets to the containers come from:
	// its VTEP on an IPv6 underlay, else the first global IPv6 address of
	// Dev (invalid: the kernel's choice, the node having none then).
	Src netip.Addr `json:"src,omitzero"`
}

// ForwardingChange is one device whose forwarding Setup turned on.
type ForwardingChange struct {
	// NetNS is the namespace (HostNetNS, or the overlay namespace's name).
	NetNS string `json:"netns"`
	Dev   string `json:"dev"`
	// Was is the value before Setup changed it (Teardown's target).
	Was uint32 `json:"was"`
	// IPv6 says the setting is the device's IPv6 force_forwarding (else
	// its IPv4 forwarding).
	IPv6 bool `json:"ipv6,omitempty"`
}

// HostRules are tagged accept rules in a host chain egress does not own.
type HostRules struct {
	Family nft.Family `json:"family"`
	Table  string     `json:"table"`
	Chain  string     `json:"chain"`
	Tags   []string   `json:"tags"`
}

func (h HostRules) chain() nft.Chain {
	return nft.Chain{Table: nft.Table{Family: h.Family, Name: h.Table}, Name: h.Chain}
}

// Status is egress as the kernel has it, next to what State recorded.
type Status struct {
	Dev         string       `json:"dev"`
	HostIf      string       `json:"host_if"`
	OverlayIf   string       `json:"overlay_if"`
	Link        netip.Prefix `json:"link"`
	HostAddr    netip.Prefix `json:"host_addr"`
	OverlayAddr netip.Prefix `json:"overlay_addr"`
	// Routes are the path's two routes, as `ip route` would print them,
	// with whether they are there.
	Routes []RouteStatus `json:"routes"`
	// Forwarding is the forwarding value of each device on the path.
	Forwarding []ForwardingStatus `json:"forwarding"`
	// Rules are egress's nftables rules: the masquerade rule and the host
	// accept rules, with their counters.
	Rules []RuleStatus `json:"rules"`
	// IPv6 is the node path's IPv6 half, as State recorded it (nil:
	// none).
	IPv6 *State6 `json:"ipv6,omitempty"`
	// Problems lists what is missing or differs.
	Problems []string `json:"problems,omitempty"`
}

// RouteStatus is one route of the path.
type RouteStatus struct {
	NetNS   string `json:"netns"`
	Route   string `json:"route"`
	Present bool   `json:"present"`
}

// ForwardingStatus is a device's forwarding value.
type ForwardingStatus struct {
	NetNS string `json:"netns"`
	Dev   string `json:"dev"`
	// Setting is "forwarding" (IPv4) or "ipv6 force_forwarding".
	Setting string `json:"setting"`
	// Value is the current value (-1 if the device is missing).
	Value int64 `json:"value"`
	// SetByEgress says Setup turned it on; Was is then the value Teardown
	// restores.
	SetByEgress bool   `json:"set_by_egress"`
	Was         uint32 `json:"was,omitempty"`
}

// RuleStatus is one of egress's nftables rules.
type RuleStatus struct {
	// Chain is "family table chain".
	Chain   string `json:"chain"`
	Tag     string `json:"tag"`
	Handle  uint64 `json:"handle"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}
