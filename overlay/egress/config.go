package egress

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/overlay/nft"
)

// Defaults of a Config.
const (
	DefaultHostIf    = "overlay0"
	DefaultOverlayIf = "egress0"
	// TableFeature names egress's nftables table: inet overlaynet-egress.
	TableFeature = "egress"
)

// DefaultLinkRange is where a link subnet is chosen when Config.LinkSubnet
// is not set, 169.254.100.0/24: the first /30 in it that collides with
// nothing on the node. Link-local space: never routed beyond a link, so no
// underlay uses it for its own networks.
func DefaultLinkRange() netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{169, 254, 100, 0}), 24)
}

// Config is egress as `overlayd create` asks for it. Its zero value is
// egress with every default.
type Config struct {
	// LinkSubnet is the node path's link subnet, /16../30: its first
	// address is the node end, its second the overlay end. Zero: chosen
	// from DefaultLinkRange.
	LinkSubnet netip.Prefix `json:"link_subnet,omitzero"`
	// Dev is the device traffic to the outside leaves by: its forwarding is
	// turned on (for the replies) and masquerade applies there. Empty: the
	// device of the host's default route, or else the underlay device.
	Dev string `json:"dev,omitempty"`
	// NoHostAccept makes Setup refuse, instead of adding accept rules, on a
	// host whose forward chain has policy drop.
	NoHostAccept bool `json:"no_host_accept,omitempty"`
	// HostIf and OverlayIf name the veth pair's ends (default
	// DefaultHostIf in the host namespace, DefaultOverlayIf in the overlay
	// namespace).
	HostIf    string `json:"host_if,omitempty"`
	OverlayIf string `json:"overlay_if,omitempty"`
	// Mode6 is egress for a dual-stack overlay's IPv6 prefix
	// (Params.Subnet6); empty: Mode6Masquerade. Without an IPv6 prefix it
	// must be empty.
	Mode6 Mode6 `json:"mode6,omitempty"`
}

// Mode6 is what egress does for the containers' IPv6 traffic.
type Mode6 string

// IPv6 egress modes.
const (
	// Mode6Masquerade masquerades IPv6 leaving the node to its IPv6
	// address (NAT66), as IPv4 is: it works wherever the node has IPv6,
	// without anything outside the node knowing the overlay's prefix.
	Mode6Masquerade Mode6 = "masquerade"
	// Mode6Route forwards the containers' IPv6 unchanged: for a network
	// that routes the overlay's prefix to its nodes (replies come back to
	// any node of the overlay, which reaches the container over it).
	Mode6Route Mode6 = "route"
	// Mode6None gives IPv6 no way out: no IPv6 on the node path, no IPv6
	// forwarding.
	Mode6None Mode6 = "none"
)

// String returns the mode's name ("masquerade" for the empty default).
func (m Mode6) String() string { return string(m.OrDefault()) }

// OrDefault returns m, or Mode6Masquerade for the empty mode.
func (m Mode6) OrDefault() Mode6 {
	if m == "" {
		return Mode6Masquerade
	}
	return m
}

// ParseMode6 parses "masquerade", "route" or "none".
func ParseMode6(s string) (Mode6, error) {
	switch m := Mode6(s); m {
	case Mode6Masquerade, Mode6Route, Mode6None:
		return m, nil
	}
	return "", fmt.Errorf("egress: IPv6 egress %q: want masquerade, route or none", s)
}

// withDefaults fills the names.
func (c Config) withDefaults() Config {
	if c.HostIf == "" {
		c.HostIf = DefaultHostIf
	}
	if c.OverlayIf == "" {
		c.OverlayIf = DefaultOverlayIf
	}
	return c
}

// Validate checks c on its own, naming the bad field.
func (c Config) Validate() error {
	var errs []error
	if p := c.LinkSubnet; p.IsValid() {
		switch {
		case !p.Addr().Is4() || p.Addr().Is4In6():
			errs = append(errs, fmt.Errorf("egress: link subnet %s is not IPv4", p))
		case p.Bits() < 16 || p.Bits() > 30:
			errs = append(errs, fmt.Errorf("egress: link subnet %s: want a prefix of /16../30", p))
		case p.Addr() != p.Masked().Addr():
			errs = append(errs, fmt.Errorf("egress: link subnet %s has host bits set (want %s)", p, p.Masked()))
		case p.Addr().IsMulticast() || p.Addr().IsLoopback() || p.Addr().IsUnspecified():
			errs = append(errs, fmt.Errorf("egress: link subnet %s is not unicast space", p))
		}
	}
	for _, f := range []struct{ field, name string }{{"dev", c.Dev}, {"host interface", c.HostIf}, {"overlay interface", c.OverlayIf}} {
		if f.name == "" {
			continue
		}
		if err := validIfName(f.name); err != nil {
			errs = append(errs, fmt.Errorf("egress: %s %q: %w", f.field, f.name, err))
		}
	}
	if c.Mode6 != "" {
		if _, err := ParseMode6(string(c.Mode6)); err != nil {
			errs = append(errs, err)
		}
	}
	d := c.withDefaults()
	if d.HostIf == d.OverlayIf {
		errs = append(errs, fmt.Errorf("egress: both ends of the node path are named %q", d.HostIf))
	}
	if c.Dev != "" && c.Dev == d.HostIf {
		errs = append(errs, fmt.Errorf("egress: dev %q is the node path itself", c.Dev))
	}
	return errors.Join(errs...)
}

func validIfName(name string) error {
	if len(name) > 15 {
		return fmt.Errorf("longer than 15 bytes")
	}
	if name == "." || name == ".." {
		return errors.New("not allowed")
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return errors.New("contains '/', ':', whitespace or a control character")
		}
	}
	return nil
}

// Table returns egress's nftables table.
func Table() nft.Table { return nft.FeatureTable(nft.FamilyINet, TableFeature) }

// hostEnd and overlayEnd return the path's addresses in link.
func hostEnd(link netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(link.Masked().Addr().Next(), link.Bits())
}

func overlayEnd(link netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(link.Masked().Addr().Next().Next(), link.Bits())
}

// The node path's IPv6 addresses: link-local, fe80::1 at the node end and
// fe80::2 at the overlay end. Link-local addresses belong to their link
// alone, so no address or route of the node can collide with them (IPv4's
// link subnet is chosen among free ones), and routes go via them as via a
// router's. The bridge gets fe80::3: the overlay namespace solicits the
// address of a packet it forwards into the overlay from a link-local
// address of the bridge, and sends no solicitation without one (the
// bridge has none of its own: no duplicate address detection on the
// overlay). Every node's bridge has it, as each has the gateway address;
// neither leaves the node (the vxlan answers solicitations itself).
func hostEnd6() netip.Prefix    { return netip.MustParsePrefix("fe80::1/64") }
func overlayEnd6() netip.Prefix { return netip.MustParsePrefix("fe80::2/64") }
func bridgeAddr6() netip.Prefix { return netip.MustParsePrefix("fe80::3/64") }
