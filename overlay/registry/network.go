package registry

import (
	"fmt"
	"net/netip"
	"strings"
)

// Network is the part of a node's configuration that every node of an
// overlay must share: the VXLAN identity of the overlay and its subnet. The
// first node to create the overlay publishes it in the registry; every other
// node's create, attach and run compare their own with it.
type Network struct {
	// VNI is the VXLAN network identifier.
	VNI uint32 `json:"vni"`
	// Port is the VXLAN UDP port.
	Port uint16 `json:"port"`
	// MTU is the vxlan's, the bridge's and the containers' MTU.
	MTU uint32 `json:"mtu"`
	// Gateway is the bridge address and, by its prefix, the overlay subnet.
	Gateway netip.Prefix `json:"gateway"`
	// Gateway6 is the bridge's IPv6 address and, by its prefix, the
	// overlay's IPv6 prefix; invalid for an IPv4-only overlay (a network
	// recorded before dual-stack reads so).
	Gateway6 netip.Prefix `json:"gateway6,omitzero"`
	// BlockBits6 is the prefix length of the IPv6 address blocks nodes
	// claim; 0 without Gateway6.
	BlockBits6 int `json:"block_bits6,omitempty"`
	// Underlay6 says the underlay is IPv6: every VTEP is an IPv6 address.
	// False (and a network recorded before IPv6 underlays): IPv4.
	Underlay6 bool `json:"underlay6,omitempty"`
	// Encrypt says that nodes reach each other only through WireGuard:
	// VXLAN runs between the nodes' tunnel addresses, inside it.
	Encrypt bool `json:"encrypt,omitempty"`
	// Tunnel is the subnet of the nodes' tunnel addresses (their VTEPs)
	// with Encrypt; invalid without.
	Tunnel netip.Prefix `json:"tunnel,omitzero"`
}

// UnderlayFamily names the underlay's address family: "IPv4" or "IPv6".
func (n Network) UnderlayFamily() string {
	if n.Underlay6 {
		return "IPv6"
	}
	return "IPv4"
}

// NetworkDiff is one setting in which a node's network differs from the
// recorded one.
type NetworkDiff struct {
	// Field names the setting: "VNI", "port", "MTU", "gateway",
	// "IPv6 gateway", "IPv6 block bits", "underlay", "encrypt" or
	// "tunnel subnet".
	Field string `json:"field"`
	// Want is the node's value.
	Want string `json:"want"`
	// Have is the recorded value.
	Have string `json:"have"`
}

// NetworkMismatchError is the error of a node whose network differs from the
// one recorded in the registry. It matches ErrConflict.
type NetworkMismatchError struct {
	// Diffs lists every differing setting.
	Diffs []NetworkDiff `json:"diffs"`
}

// Error names each difference as "store FIELD: want W, have H".
func (e *NetworkMismatchError) Error() string {
	var b strings.Builder
	b.WriteString("registry: this node's overlay differs from the one every node agreed on in the store (nothing changed): ")
	for i, d := range e.Diffs {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "store %s: want %s, have %s", d.Field, d.Want, d.Have)
	}
	return b.String()
}

// Is makes the error match ErrConflict.
func (e *NetworkMismatchError) Is(target error) bool { return target == ErrConflict }

// DiffNetwork lists the settings in which a node's network (want) differs
// from the recorded one (have).
func DiffNetwork(want, have Network) []NetworkDiff {
	var dd []NetworkDiff
	add := func(field string, w, h any) {
		ws, hs := fmt.Sprint(w), fmt.Sprint(h)
		if ws != hs {
			dd = append(dd, NetworkDiff{Field: field, Want: ws, Have: hs})
		}
	}
	add("VNI", want.VNI, have.VNI)
	add("port", want.Port, have.Port)
	add("MTU", want.MTU, have.MTU)
	add("gateway", want.Gateway, have.Gateway)
	add("IPv6 gateway", prefixOrNone(want.Gateway6), prefixOrNone(have.Gateway6))
	add("IPv6 block bits", want.BlockBits6, have.BlockBits6)
	add("underlay", want.UnderlayFamily(), have.UnderlayFamily())
	add("encrypt", want.Encrypt, have.Encrypt)
	add("tunnel subnet", prefixOrNone(want.Tunnel), prefixOrNone(have.Tunnel))
	return dd
}

// CheckNetwork returns a *NetworkMismatchError if want differs from have,
// else nil.
func CheckNetwork(want, have Network) error {
	if dd := DiffNetwork(want, have); len(dd) > 0 {
		return &NetworkMismatchError{Diffs: dd}
	}
	return nil
}

func prefixOrNone(p netip.Prefix) string {
	if !p.IsValid() {
		return "(none)"
	}
	return p.String()
}
