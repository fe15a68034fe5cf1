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
	// 1450); 68 .. underlay MTU - 50.
	MTU uint32 `json:"mtu"`
	// Gateway is the bridge's address and, by its prefix, the overlay
	// subnet (default 198.51.100.1/24).
	Gateway netip.Prefix `json:"gateway"`
	// Local is the VTEP address (optional; exclusive with Dev).
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
	if c.MTU < MinMTU {
		errs = append(errs, fmt.Errorf("overlay: MTU %d is below the IPv4 minimum %d", c.MTU, MinMTU))
	} else if c.MTU > 65535-VXLANOverhead {
		errs = append(errs, fmt.Errorf("overlay: MTU %d is above %d", c.MTU, 65535-VXLANOverhead))
	}
	if err := validateGateway(c.Gateway); err != nil {
		errs = append(errs, err)
	}
	if c.Local.IsValid() && c.Dev != "" {
		errs = append(errs, fmt.Errorf("overlay: local %s and dev %q are exclusive: give one", c.Local, c.Dev))
	}
	if c.Local.IsValid() {
		if !c.Local.Is4() || c.Local.IsUnspecified() || c.Local.IsMulticast() || c.Local.IsLoopback() {
			errs = append(errs, fmt.Errorf("overlay: local %s is not a unicast IPv4 VTEP address", c.Local))
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
	if c.Egress != nil {
		if err := c.Egress.Validate(); err != nil {
			errs = append(errs, err)
		}
		if p := c.Egress.LinkSubnet; p.IsValid() && c.Gateway.IsValid() && p.Overlaps(c.Subnet()) {
			errs = append(errs, fmt.Errorf("overlay: egress link subnet %s overlaps the overlay subnet %s", p, c.Subnet()))
		}
	}
	return errors.Join(errs...)
}

func validateGateway(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return errors.New("overlay: gateway is not set (want an address with prefix, e.g. 198.51.100.1/24)")
	case !p.Addr().Is4() || p.Addr().Is4In6():
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
