package overlay

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/overlaynet/overlaynet/overlay/egress"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Limits and defaults of a Config.
const (
	// MaxVNI is the largest VXLAN network identifier (24 bits).
	MaxVNI = 1<<24 - 1
	// MinMTU is the smallest MTU an IPv4 link may have.
	MinMTU = 68
	// VXLANOverhead is what VXLAN over IPv4 adds to every frame: outer IPv4
	// (20) + UDP (8) + VXLAN (8) + inner Ethernet (14) headers.
	VXLANOverhead = 50
	// VXLANOverhead6 is what VXLAN over an IPv6 underlay adds: the outer
	// IPv6 header is 40 bytes instead of 20.
	VXLANOverhead6 = 70
	// DefaultMTU is the overlay's MTU on an IPv4 underlay of MTU 1500,
	// DefaultMTU6 on an IPv6 one: what Create takes when Config.MTU is 0.
	DefaultMTU  = 1500 - VXLANOverhead
	DefaultMTU6 = 1500 - VXLANOverhead6
	// DefaultBlockBits6 is the prefix length of the IPv6 address blocks
	// nodes claim when Config.BlockBits6 is 0: 256 addresses.
	DefaultBlockBits6 = 120
	// MaxIfNameLen is the longest interface name the kernel accepts
	// (IFNAMSIZ - 1).
	MaxIfNameLen = 15
	// MaxNetNSNameLen is the longest namespace name accepted: the kernel's
	// NAME_MAX for a file in the namespace directory.
	MaxNetNSNameLen = 255
)

// Config is a node's overlay: what `overlayd create` takes and what the state
// directory remembers, so later commands need no repeated flags.
type Config struct {
	// VNI is the VXLAN network identifier, 1..16777215 (default 42).
	VNI uint32 `json:"vni"`
	// Port is the UDP destination port of the vxlan device (default 4789).
	Port uint16 `json:"port"`
	// MTU of the vxlan device, the bridge and the container links (default
	// 1450); 68 .. underlay MTU - 50 (- 70 on an IPv6 underlay). Zero:
	// DefaultMTU, or DefaultMTU6 on an IPv6 underlay, chosen by Create.
	MTU uint32 `json:"mtu"`
	// Gateway is the bridge's IPv4 address and, by its prefix, the overlay
	// subnet (default 198.51.100.1/24). Every overlay has one: IPv6-only
	// overlays are not supported (Validate says why).
	Gateway netip.Prefix `json:"gateway"`
	// Gateway6, if valid, is the bridge's IPv6 address and, by its prefix,
	// the overlay's IPv6 prefix (2001:db8:42::1/64): the overlay is then
	// dual-stack, its containers get an address of each family. Invalid:
	// IPv4 only (an overlay recorded before dual-stack reads so).
	Gateway6 netip.Prefix `json:"gateway6,omitzero"`
	// BlockBits6 is the prefix length of the IPv6 address blocks a node
	// claims for allocation (0: DefaultBlockBits6 on a dual-stack
	// overlay). It is part of the overlay's agreed network: every node
	// uses the same. The IPv6 prefix must hold at least one block.
	BlockBits6 int `json:"block_bits6,omitempty"`
	// Local is the VTEP address, IPv4 or IPv6: its family is the
	// underlay's (optional; exclusive with Dev).
	Local netip.Addr `json:"local,omitzero"`
	// Dev is the underlay device (optional; exclusive with Local).
	Dev string `json:"dev,omitempty"`
	// Learning turns on the vxlan's source-address learning.
	Learning bool `json:"learning"`
	// OverlayNetNS names the overlay network namespace (default "overns").
	OverlayNetNS string `json:"overlay_netns"`
	// Bridge names the bridge in the overlay namespace (default "br0").
	Bridge string `json:"bridge"`
	// Vxlan names the vxlan device (default "vxlan1").
	Vxlan string `json:"vxlan"`
	// Egress, when set, gives the containers a way out and the node a way
	// in (package egress: node path, forwarding, masquerade). Nil: none.
	// `overlayd create` sets it unless --no-egress.
	Egress *egress.Config `json:"egress,omitempty"`
	// NoVTEPFilter turns the VTEP allowlist off: any host that reaches this
	// node's UDP port can put frames on the overlay, to any container, with
	// any source (see overlay/guard).
	NoVTEPFilter bool `json:"no_vtep_filter,omitempty"`
	// NoAntispoof turns per-port anti-spoofing off: a container can send
	// frames with another container's MAC or IP address, and forge ARP
	// replies, locally and across nodes.
	NoAntispoof bool `json:"no_antispoof,omitempty"`
	// Encrypt, when set, carries the overlay between nodes inside
	// WireGuard (see EncryptConfig). Nil: VXLAN on the underlay, in clear.
	Encrypt *EncryptConfig `json:"encrypt,omitempty"`
}

// DefaultConfig returns the default overlay: VNI 42, port 4789, MTU 1450,
// gateway 198.51.100.1/24, namespace overns, bridge br0, vxlan vxlan1,
// learning off, VTEP chosen from the default route.
func DefaultConfig() Config {
	return Config{
		VNI:          42,
		Port:         4789,
		MTU:          1450,
		Gateway:      netip.MustParsePrefix("198.51.100.1/24"),
		OverlayNetNS: "overns",
		Bridge:       "br0",
		Vxlan:        "vxlan1",
	}
}

// Subnet returns the overlay subnet (Gateway's prefix, masked).
func (c Config) Subnet() netip.Prefix { return c.Gateway.Masked() }

// Subnet6 returns the overlay's IPv6 prefix (Gateway6's, masked), invalid
// on an IPv4-only overlay.
func (c Config) Subnet6() netip.Prefix {
	if !c.Gateway6.IsValid() {
		return netip.Prefix{}
	}
	return c.Gateway6.Masked()
}

// DualStack says whether the overlay has an IPv6 prefix besides its IPv4
// subnet.
func (c Config) DualStack() bool { return c.Gateway6.IsValid() }

// Families returns the address families of the overlay's containers:
// IPv4, and IPv6 on a dual-stack overlay.
func (c Config) Families() []Family {
	if c.DualStack() {
		return []Family{IPv4, IPv6}
	}
	return []Family{IPv4}
}

// Gateways returns the overlay's gateways: the IPv4 one, and the IPv6 one
// on a dual-stack overlay.
func (c Config) Gateways() []netip.Prefix {
	if c.DualStack() {
		return []netip.Prefix{c.Gateway, c.Gateway6}
	}
	return []netip.Prefix{c.Gateway}
}

// GatewayOf returns the overlay's gateway of family f, invalid if it has
// none.
func (c Config) GatewayOf(f Family) netip.Prefix {
	if f == IPv6 {
		return c.Gateway6
	}
	return c.Gateway
}

// EffectiveBlockBits6 is BlockBits6, or DefaultBlockBits6 when it is 0.
func (c Config) EffectiveBlockBits6() int {
	if c.BlockBits6 == 0 {
		return DefaultBlockBits6
	}
	return c.BlockBits6
}

// Overhead returns what VXLAN adds to a frame on an underlay of vtep's
// family: VXLANOverhead for IPv4, VXLANOverhead6 for IPv6.
func Overhead(vtep netip.Addr) uint32 {
	if vtep.IsValid() && !vtep.Unmap().Is4() {
		return VXLANOverhead6
	}
	return VXLANOverhead
}

// DefaultMTUFor is the MTU Create gives an overlay whose Config.MTU is 0,
// on an underlay of vtep's family: 1450 (IPv4) or 1430 (IPv6).
func DefaultMTUFor(vtep netip.Addr) uint32 { return 1500 - Overhead(vtep) }

// Validate checks c on its own (the underlay MTU is checked by Create),
// naming the bad field and value in the error.
func (c Config) Validate() error {
	var errs []error
	if c.VNI == 0 || c.VNI > MaxVNI {
		errs = append(errs, fmt.Errorf("overlay: VNI %d out of range 1..%d", c.VNI, MaxVNI))
	}
	if c.Port == 0 {
		errs = append(errs, errors.New("overlay: port 0 is not a valid UDP port"))
	}
	switch {
	case c.MTU == 0: // chosen by Create for the underlay's family
	case c.MTU < MinMTU:
		errs = append(errs, fmt.Errorf("overlay: MTU %d is below the IPv4 minimum %d", c.MTU, MinMTU))
	case c.MTU > 65535-Overhead(c.Local):
		errs = append(errs, fmt.Errorf("overlay: MTU %d is above %d", c.MTU, 65535-Overhead(c.Local)))
	}
	if err := validateGateway(c.Gateway); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateIPv6())
	if c.Local.IsValid() && c.Dev != "" {
		errs = append(errs, fmt.Errorf("overlay: local %s and dev %q are exclusive: give one", c.Local, c.Dev))
	}
	if c.Local.IsValid() {
		if err := validateLocal(c.Local); err != nil {
			errs = append(errs, err)
		}
		for _, s := range []netip.Prefix{c.Subnet(), c.Subnet6()} {
			if s.IsValid() && s.Contains(c.Local.WithZone("")) {
				errs = append(errs, fmt.Errorf("overlay: local %s is inside the overlay's prefix %s: a VTEP is an underlay address", c.Local, s))
			}
		}
	}
	if c.Dev != "" {
		if err := validateIfName("dev", c.Dev); err != nil {
			errs = append(errs, err)
		}
	}
	if err := ValidateNetNSName(c.OverlayNetNS); err != nil {
		errs = append(errs, fmt.Errorf("overlay: overlay netns: %w", err))
	}
	if err := validateIfName("bridge", c.Bridge); err != nil {
		errs = append(errs, err)
	}
	if err := validateIfName("vxlan", c.Vxlan); err != nil {
		errs = append(errs, err)
	}
	if c.Bridge != "" && c.Bridge == c.Vxlan {
		errs = append(errs, fmt.Errorf("overlay: bridge and vxlan are both named %q", c.Bridge))
	}
	if c.Encrypt != nil {
		errs = append(errs, c.Encrypt.validate(c)...)
	}
	if c.Egress != nil {
		if err := c.Egress.Validate(); err != nil {
			errs = append(errs, err)
		}
		if p := c.Egress.LinkSubnet; p.IsValid() && c.Gateway.IsValid() && p.Overlaps(c.Subnet()) {
			errs = append(errs, fmt.Errorf("overlay: egress link subnet %s overlaps the overlay subnet %s", p, c.Subnet()))
		}
		if m := c.Egress.Mode6; m != "" && !c.DualStack() {
			errs = append(errs, fmt.Errorf("overlay: IPv6 egress %s needs an IPv6 gateway (the overlay is IPv4 only)", m))
		}
	}
	return errors.Join(errs...)
}

func validateGateway(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return errors.New("overlay: gateway is not set (want an address with prefix, e.g. 198.51.100.1/24)")
	case p.Addr().Is6() && !p.Addr().Is4In6():
		return fmt.Errorf("overlay: gateway %s is not IPv4: an IPv6 gateway goes beside an IPv4 one (IPv6-only overlays are not supported: "+
			"egress, the node path and the containers' derived MACs need IPv4)", p)
	case !p.Addr().Is4():
		return fmt.Errorf("overlay: gateway %s is not IPv4", p)
	case p.Bits() < 1 || p.Bits() > 30:
		return fmt.Errorf("overlay: gateway prefix /%d leaves no room for containers (want /1../30)", p.Bits())
	case p.Addr() == p.Masked().Addr():
		return fmt.Errorf("overlay: gateway %s is the subnet's network address", p)
	case p.Addr() == broadcast(p):
		return fmt.Errorf("overlay: gateway %s is the subnet's broadcast address", p)
	case p.Addr().IsMulticast() || p.Addr().IsLoopback() || p.Addr().IsUnspecified():
		return fmt.Errorf("overlay: gateway %s is not a unicast address", p)
	}
	return nil
}

// broadcast returns the last address of p's subnet (IPv4).
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// validateIfName checks an interface name against the kernel's rules
// (dev_valid_name): 1..15 bytes, not "." or "..", no '/', ':' or
// whitespace.
func validateIfName(field, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("overlay: %s name is empty", field)
	case len(name) > MaxIfNameLen:
		return fmt.Errorf("overlay: %s name %q is %d bytes, longer than the kernel's %d", field, name, len(name), MaxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("overlay: %s name %q is not allowed", field, name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("overlay: %s name %q contains '/', ':', whitespace or a control character", field, name)
		}
	}
	return nil
}

// ValidateNetNSName checks a network namespace name: what
// rtnl.ValidateNetNSName checks, plus no ".." anywhere in it.
func ValidateNetNSName(name string) error {
	if err := rtnl.ValidateNetNSName(name); err != nil {
		return err
	}
	if strings.Contains(name, "..") {
		return fmt.Errorf("overlay: netns name %q contains \"..\"", name)
	}
	if len(name) > MaxNetNSNameLen {
		return fmt.Errorf("overlay: netns name %q is longer than %d bytes", name, MaxNetNSNameLen)
	}
	return nil
}
