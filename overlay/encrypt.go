package overlay

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/overlaynet/overlaynet/overlay/wireguard"
)

// Defaults and sizes of an encrypted overlay.
const (
	// DefaultWireGuardPort is EncryptConfig.Port when zero.
	DefaultWireGuardPort = 51820
	// WireGuardOverhead is what WireGuard adds to every packet on an IPv4
	// underlay: outer IPv4 (20) + UDP (8) + its header (16: type,
	// receiver, counter) + its authentication tag (16). On an IPv6
	// underlay, 20 more (WireGuardOverhead6).
	WireGuardOverhead  = 60
	WireGuardOverhead6 = 80
	// DefaultEncryptedMTU is the overlay's MTU with encryption on an IPv4
	// underlay of MTU 1500: 1500 - 60 - 50.
	DefaultEncryptedMTU = 1500 - WireGuardOverhead - VXLANOverhead
)

// DefaultTunnelSubnet returns EncryptConfig.Tunnel's default,
// 169.254.32.0/19: link-local, so no routed network of the node's uses it,
// and clear of egress's default link range (169.254.100.0/24) and of the
// cloud metadata address (169.254.169.254). 8,190 nodes.
func DefaultTunnelSubnet() netip.Prefix { return netip.MustParsePrefix("169.254.32.0/19") }

// EncryptConfig is an encrypted overlay's part of a node's Config: the
// nodes reach each other through a WireGuard device each, on the underlay,
// and the overlay's VXLAN runs inside it between the nodes' tunnel
// addresses (their VTEPs).
type EncryptConfig struct {
	// Tunnel is the subnet of the nodes' tunnel addresses, the same on
	// every node (the agreed network's). Each node claims one address of
	// it in the store.
	Tunnel netip.Prefix `json:"tunnel"`
	// Port is this node's WireGuard UDP port (default 51820), published
	// with its key.
	Port uint16 `json:"port"`
	// Device names the WireGuard device; empty: DefaultWireGuardDevice of
	// the state directory.
	Device string `json:"device,omitempty"`
	// Provider, if set, is the only provider tried (zero: the kernel's
	// where it has WireGuard, else userspace).
	Provider wireguard.Provider `json:"provider,omitzero"`
}

// DefaultWireGuardDevice returns the WireGuard device name of the node
// whose state directory is stateDir: "owg" and 8 hex digits of the
// directory's absolute path hashed. A userspace device's UAPI socket is
// /var/run/wireguard/NAME.sock for every network namespace of the machine:
// nodes simulated on one machine, each with its own state directory, get
// names of their own.
func DefaultWireGuardDevice(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "owg" + hex.EncodeToString(sum[:4])
}

// linkLocal6 is IPv6's link-local prefix, which VTEPs stay out of
// (registry.ReasonVTEPLinkLocal).
func linkLocal6() netip.Prefix { return netip.MustParsePrefix("fe80::/10") }

// validate checks e within c.
func (e *EncryptConfig) validate(c Config) []error {
	var errs []error
	t := e.Tunnel
	switch {
	case !t.IsValid():
		errs = append(errs, errors.New("overlay: encrypt: no tunnel subnet"))
	case t != t.Masked():
		errs = append(errs, fmt.Errorf("overlay: encrypt: tunnel subnet %s is not a network prefix (%s)", t, t.Masked()))
	case t.Addr().Is4() && t.Bits() > 30, t.Addr().Is6() && t.Bits() > 126:
		errs = append(errs, fmt.Errorf("overlay: encrypt: tunnel subnet %s leaves no room for nodes", t))
	case t.Addr().IsMulticast() || t.Addr().IsLoopback() || t.Addr().Is4In6():
		errs = append(errs, fmt.Errorf("overlay: encrypt: tunnel subnet %s is not unicast", t))
	case t.Overlaps(linkLocal6()):
		errs = append(errs, fmt.Errorf("overlay: encrypt: tunnel subnet %s is IPv6 link-local: a VTEP there is no address an FDB entry reaches without naming a device", t))
	case c.Gateway.IsValid() && t.Overlaps(c.Subnet()):
		errs = append(errs, fmt.Errorf("overlay: encrypt: tunnel subnet %s overlaps the overlay subnet %s", t, c.Subnet()))
	case c.DualStack() && t.Overlaps(c.Subnet6()):
		errs = append(errs, fmt.Errorf("overlay: encrypt: tunnel subnet %s overlaps the overlay's IPv6 prefix %s", t, c.Subnet6()))
	case c.Egress != nil && c.Egress.LinkSubnet.IsValid() && t.Overlaps(c.Egress.LinkSubnet):
		errs = append(errs, fmt.Errorf("overlay: encrypt: tunnel subnet %s overlaps the egress link subnet %s", t, c.Egress.LinkSubnet))
	}
	if e.Port == 0 {
		errs = append(errs, errors.New("overlay: encrypt: WireGuard port 0 is not a valid UDP port"))
	} else if e.Port == c.Port {
		errs = append(errs, fmt.Errorf("overlay: encrypt: WireGuard port %d is the VXLAN port", e.Port))
	}
	if e.Device != "" {
		if err := validateIfName("WireGuard device", e.Device); err != nil {
			errs = append(errs, err)
		}
	}
	if c.NoVTEPFilter {
		errs = append(errs, errors.New("overlay: encrypt needs the VTEP allowlist (its WireGuard peers follow it): drop no-vtep-filter"))
	}
	if c.Local.IsValid() && t.IsValid() && t.Contains(c.Local) {
		errs = append(errs, fmt.Errorf("overlay: encrypt: local %s is inside the tunnel subnet %s", c.Local, t))
	}
	return errs
}

// device returns e's device name for the node of stateDir.
func (e *EncryptConfig) device(stateDir string) string {
	if e.Device != "" {
		return e.Device
	}
	return DefaultWireGuardDevice(stateDir)
}

// tunnelMTUs returns the MTU of the WireGuard device on an underlay of
// MTU underlayMTU whose VTEP (the endpoint) is underlay, and the largest
// overlay MTU VXLAN between tunnel addresses of tunnel leaves.
func tunnelMTUs(underlayMTU uint32, underlay netip.Addr, tunnel netip.Prefix) (wg, overlayMax uint32) {
	wgOver, vxOver := uint32(WireGuardOverhead), uint32(VXLANOverhead)
	if underlay.IsValid() && !underlay.Unmap().Is4() {
		wgOver = WireGuardOverhead6
	}
	if tunnel.Addr().Is6() {
		vxOver = VXLANOverhead6
	}
	if underlayMTU < wgOver+vxOver+MinMTU {
		return 0, 0
	}
	return underlayMTU - wgOver, underlayMTU - wgOver - vxOver
}
