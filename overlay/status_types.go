package overlay

import (
	"net/netip"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/overlay/guard"
	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
)

// Status is a read-back of a node's overlay from the kernel, next to what
// the state directory remembers.
type Status struct {
	// Overlay is the overlay as recorded by Create.
	Overlay Overlay `json:"overlay"`
	// Created says which parts Create made (and Reset would delete).
	Created Creation `json:"created"`
	// Devices are the overlay's devices as the kernel reports them.
	Devices []DeviceStatus `json:"devices"`
	// Endpoints are the attached containers with their kernel state.
	Endpoints []EndpointStatus `json:"endpoints"`
	// HalfMade are the endpoint operations that did not end: under way
	// (InProgress), or killed half-way (or rolled back only in part), to be
	// finished or undone by the next attach or detach of the name, CNI DEL
	// or GC, or overlayd run.
	HalfMade []HalfMade `json:"half_made,omitempty"`
	// Neighbors are the vxlan's IPv4 neighbour (proxy ARP) entries.
	Neighbors []NeighborEntry `json:"neighbors"`
	// FDB are the vxlan's forwarding entries (MAC → remote VTEP, flag
	// "self") and the bridge's entries for its vxlan port (its own address,
	// learned MACs).
	FDB []FDBEntry `json:"fdb"`
	// Blocks are the address blocks this node holds in the registry and
	// how many of their addresses are allocated (without a registry: none).
	Blocks []ipam.BlockUsage `json:"blocks,omitempty"`
	// Egress is the node path, forwarding and rules egress made (nil
	// without egress).
	Egress *egress.Status `json:"egress,omitempty"`
	// Guard is the VTEP allowlist and the per-port anti-spoofing rules.
	Guard GuardStatus `json:"guard"`
	// Tunnel is an encrypted overlay's WireGuard device as its provider
	// reports it (nil without encryption).
	Tunnel *TunnelStatus `json:"tunnel,omitempty"`
	// Problems lists what is missing or differs from the recorded state.
	Problems []string `json:"problems,omitempty"`
	// Gone is true when the recorded overlay is not in the kernel: its
	// namespace, bridge or vxlan is missing.
	Gone bool `json:"gone,omitempty"`
}

// HalfMade is an endpoint operation that did not end, as its record of
// intent says.
type HalfMade struct {
	// Name is the endpoint's name, Op the operation ("attach", "detach").
	Name string    `json:"name"`
	Op   Operation `json:"op"`
	// Steps are the steps it set out to make, in order; Made those it
	// recorded as made (the last step intended may be half-made).
	Steps []string `json:"steps"`
	Made  []string `json:"made"`
	// IP and MAC are the endpoint's, once allocated.
	IP  netip.Prefix `json:"ip,omitzero"`
	MAC ethaddr.MAC  `json:"mac,omitzero"`
	// PID is the process that ran it, Started when it began.
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
	// InProgress is true while the operation still runs.
	InProgress bool `json:"in_progress"`
}

// GuardStatus is what the kernel has of the overlay's protections (see
// overlay/guard).
type GuardStatus struct {
	// VTEPFilter and Antispoof say whether each protection is on (off only
	// when create was given --no-vtep-filter or --no-antispoof).
	VTEPFilter bool `json:"vtep_filter"`
	Antispoof  bool `json:"antispoof"`
	// AllowlistInstalled is true once `overlayd run` installed the
	// allowlist in this node's namespace (it stays while the daemon is
	// stopped, until reset).
	AllowlistInstalled bool `json:"allowlist_installed"`
	// Allowlist are the underlay addresses VXLAN is accepted from.
	Allowlist []netip.Addr `json:"allowlist"`
	// VTEPDrops counts the VXLAN packets dropped for coming from elsewhere.
	VTEPDrops uint64 `json:"vtep_drops"`
	// OutsideTunnelDrops counts, in an encrypted overlay, the VXLAN
	// packets dropped for not coming through the WireGuard device.
	OutsideTunnelDrops uint64 `json:"outside_tunnel_drops,omitempty"`
	// WireGuardPeers are, in an encrypted overlay, the underlay addresses
	// WireGuard is accepted from (the peers' endpoints), and
	// WireGuardDrops what came from elsewhere.
	WireGuardPeers []netip.Addr `json:"wireguard_peers,omitempty"`
	WireGuardDrops uint64       `json:"wireguard_drops,omitempty"`
	// Ports are the container ports with anti-spoofing rules, and their
	// drops by reason.
	Ports []guard.PortRules `json:"ports"`
}

// DeviceStatus is one device of the overlay.
type DeviceStatus struct {
	// Name of the device.
	Name string `json:"name"`
	// Kind is the link kind ("bridge", "vxlan").
	Kind string `json:"kind"`
	// Index is its ifindex in the overlay namespace (0 if missing).
	Index int32 `json:"index"`
	// MTU of the device.
	MTU uint32 `json:"mtu"`
	// Up reports IFF_UP.
	Up bool `json:"up"`
	// Master is the name of its master device, if any.
	Master string `json:"master,omitempty"`
	// MAC is its hardware address.
	MAC ethaddr.MAC `json:"mac"`
	// Addresses are its IPv4 addresses with prefix.
	Addresses []netip.Prefix `json:"addresses,omitempty"`
	VNI       uint32         `json:"vni,omitempty"`      // vxlan: VNI
	Port      uint16         `json:"port,omitempty"`     // vxlan: UDP destination port
	Local     netip.Addr     `json:"local,omitzero"`     // vxlan: local VTEP address, if set
	Learning  bool           `json:"learning,omitempty"` // vxlan: source-address learning
	Proxy     bool           `json:"proxy,omitempty"`    // vxlan: ARP proxy
	L2Miss    bool           `json:"l2miss,omitempty"`   // vxlan: FDB miss notifications
	L3Miss    bool           `json:"l3miss,omitempty"`   // vxlan: neighbour miss notifications
	// Missing is true if the device does not exist.
	Missing bool `json:"missing,omitempty"`
}

// EndpointStatus is an attached container and what the kernel has of it.
// Its HostIndex and PeerIndex are the kernel's current ifindexes where the
// devices exist (the recorded ones otherwise).
type EndpointStatus struct {
	Endpoint
	// CreatedNetNS is true if Attach made the container namespace.
	CreatedNetNS bool `json:"created_netns"`
	HostUp       bool `json:"host_up"` // the host veth is up
	PeerUp       bool `json:"peer_up"` // the container interface is up
	// HostMaster is the host veth's master (the bridge when healthy).
	HostMaster string `json:"host_master,omitempty"`
	// KernelPeerIndex is the peer ifindex the host veth reports (IFLA_LINK);
	// it should equal PeerIndex.
	KernelPeerIndex int32 `json:"kernel_peer_index"`
	// Problems lists what is missing or differs.
	Problems []string `json:"problems,omitempty"`
}

// NeighborEntry is a neighbour entry on the vxlan.
type NeighborEntry struct {
	// IP is the neighbour's address.
	IP netip.Addr `json:"ip"`
	// MAC is its link-layer address (zero if unresolved).
	MAC ethaddr.MAC `json:"mac"`
	// State is the NUD state ("PERMANENT", "REACHABLE", ...).
	State string `json:"state"`
}

// FDBEntry is a forwarding entry on the vxlan.
type FDBEntry struct {
	// MAC is the destination MAC.
	MAC ethaddr.MAC `json:"mac"`
	// VTEP is the remote underlay address (invalid if none).
	VTEP netip.Addr `json:"vtep,omitzero"`
	VNI  uint32     `json:"vni,omitempty"`  // remote VNI, when the entry names one (else the device's)
	Port uint16     `json:"port,omitempty"` // remote port, when the entry names one (else the device's)
	// State is the NUD state.
	State string `json:"state"`
	// Flags are the NTF_* flags ("self", "master", "extern_learn", ...).
	Flags string `json:"flags,omitempty"`
}

// TunnelStatus is an encrypted overlay's WireGuard device.
type TunnelStatus struct {
	// Tunnel is the tunnel as Create recorded it.
	Tunnel
	// Running says the device answers (for userspace, its process holds
	// its lock: Pid).
	Running bool `json:"running"`
	Pid     int  `json:"pid,omitempty"`
	// ListenPort is the device's UDP port.
	ListenPort uint16 `json:"listen_port,omitempty"`
	// DeviceKey is the public key of the device's private key (the
	// recorded PublicKey, unless a rekey is half-made).
	DeviceKey wireguard.Key `json:"device_key,omitzero"`
	// RekeyHalfMade is true when a rekey died between its steps (the
	// next rekey, the daemon or a sweep takes it back).
	RekeyHalfMade bool `json:"rekey_half_made,omitempty"`
	// Peers are the device's peers: endpoint, allowed IPs, last
	// handshake, bytes in and out.
	Peers []wireguard.Peer `json:"peers"`
	// Rejected counts what a userspace device rejected since its process
	// started: handshakes that did not authenticate, packets from sources
	// a peer may not use.
	Rejected wireguard.Counters `json:"rejected"`
}
