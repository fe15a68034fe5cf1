package guard

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/overlay/nft"
)

// AntispoofTable is the anti-spoofing table, in the overlay namespace.
func AntispoofTable() nft.Table { return nft.FeatureTable(nft.FamilyBridge, Feature) }

// The base chains. A frame's source MAC is checked at bridge prerouting,
// before the bridge learns it (a forged source would otherwise move the
// victim's MAC to the forger's port in the bridge's table). The rest is
// checked where frames leave the bridge, at forward (to another port, the
// vxlan included) and input (to the bridge's own address): a frame with
// the port's own MAC still teaches the bridge where that MAC is, even when
// it is dropped (IPv6 chatter of a container that just moved here keeps
// its MAC learned on its port).
func macChain() nft.Chain     { return baseChain("ports-mac", nft.HookPrerouting) }
func fwdChain() nft.Chain     { return baseChain("ports-fwd", nft.HookForward) }
func inChain() nft.Chain      { return baseChain("ports-in", nft.HookInput) }
func baseChains() []nft.Chain { return []nft.Chain{macChain(), fwdChain(), inChain()} }

func baseChain(name string, hook nft.Hook) nft.Chain {
	return nft.Chain{Table: AntispoofTable(), Name: name, Base: &nft.Base{
		Type: nft.ChainFilter, Hook: hook, Priority: -200, Policy: nft.PolicyAccept}}
}

// portChainPrefix starts the name of a port's chain: "port-HOSTIF".
const portChainPrefix = "port-"

func portChain(hostIf string) nft.Chain {
	return nft.Chain{Table: AntispoofTable(), Name: portChainPrefix + hostIf}
}

// Reason is why anti-spoofing or the allowlist dropped a packet.
type Reason string

// Reasons, as rule tags and metric labels.
const (
	ReasonVTEP Reason = "vtep_not_allowed" // VXLAN from an address not in the allowlist
	// VXLAN that did not come through the WireGuard device (encrypted
	// overlays: every VTEP is inside the tunnel)
	ReasonOutsideTunnel Reason = "vxlan_outside_tunnel"
	// WireGuard from an address that is no peer's endpoint
	ReasonWireGuard Reason = "wireguard_not_allowed"
	ReasonSrcMAC    Reason = "src_mac"    // frame from a port with another source MAC
	ReasonARPSender Reason = "arp_sender" // ARP with another sender MAC or address
	ReasonSrcIP     Reason = "src_ip"     // IPv4 or IPv6 with another source address
	ReasonEtherType Reason = "ethertype"  // neither IPv4 nor ARP, nor IPv6 for a port with an IPv6 address (VLAN tags, ...)
	// The IPv6 guard's (antispoof6.go).
	ReasonNDTarget     Reason = "nd_target"     // Neighbor Advertisement, or duplicate address probe, for an address not the port's
	ReasonNDLLAddr     Reason = "nd_lladdr"     // Neighbor Solicitation or Advertisement naming another MAC, or with more than one option
	ReasonRouterAdvert Reason = "router_advert" // Router Advertisement from a container (RA guard)
	ReasonRedirect     Reason = "redirect"      // ICMPv6 redirect from a container
	ReasonDHCP6Server  Reason = "dhcp6_server"  // DHCPv6 server or relay message (UDP source port 547) from a container
)

// String returns the reason's label.
func (r Reason) String() string { return string(r) }

// Reasons lists every reason, in a fixed order.
func Reasons() []Reason {
	return []Reason{ReasonVTEP, ReasonOutsideTunnel, ReasonWireGuard, ReasonSrcMAC, ReasonARPSender, ReasonSrcIP, ReasonEtherType,
		ReasonNDTarget, ReasonNDLLAddr, ReasonRouterAdvert, ReasonRedirect, ReasonDHCP6Server}
}

// Port is a container port to guard: its host-side veth in the overlay
// namespace and the MAC and addresses it was attached with: IPv4 (IP), and
// on a dual-stack overlay IPv6 (IP6); either may be invalid, not both.
type Port struct {
	HostIf string
	MAC    [6]byte
	IP     netip.Addr
	IP6    netip.Addr
}

func (p Port) check() error {
	switch {
	case p.HostIf == "" || len(p.HostIf) > unix.IFNAMSIZ-1:
		return fmt.Errorf("guard: port %q: bad interface name", p.HostIf)
	case p.IP.IsValid() && !p.IP.Is4():
		return fmt.Errorf("guard: port %s: %s is not an IPv4 address", p.HostIf, p.IP)
	case p.IP6.IsValid() && (!p.IP6.Is6() || p.IP6.Is4In6() || p.IP6.Zone() != ""):
		return fmt.Errorf("guard: port %s: %s is not an IPv6 address", p.HostIf, p.IP6)
	case !p.IP.IsValid() && !p.IP6.IsValid():
		return fmt.Errorf("guard: port %s: no address", p.HostIf)
	case p.MAC == [6]byte{}:
		return fmt.Errorf("guard: port %s: no MAC", p.HostIf)
	}
	return nil
}

// Ethertypes the rules use.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
)

func etherType(op expr.CmpOp, t uint16) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: op, Register: 1, Data: binary.BigEndian.AppendUint16(nil, t)},
	}
}

func netField(offset, n uint32, op expr.CmpOp, v []byte) []expr.Any {
	return field(expr.PayloadBaseNetworkHeader, offset, n, op, v)
}

func dropCounted() []expr.Any { return nft.One(nft.Counter(), nft.Drop()) }

// portTag is the tag of a port's rule for reason r ("HOSTIF REASON"); the
// dispatch rule in "ports" is tagged with the port's name alone.
func portTag(hostIf string, r Reason) string { return hostIf + " " + string(r) }

// macRule is p's rule in ports-mac: another source MAC is dropped.
func macRule(p Port) nft.Rule {
	return nft.Rule{Tag: portTag(p.HostIf, ReasonSrcMAC), Exprs: nft.Concat(
		nft.IIFName(p.HostIf, false),
		nft.One(nft.LoadEtherSrc(), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: p.MAC[:]}), dropCounted())}
}

// dispatch is p's rule in ports-fwd and ports-in: its frames go through
// its chain.
func dispatch(hostIf string) nft.Rule {
	return nft.Rule{Tag: hostIf, Exprs: nft.Concat(nft.IIFName(hostIf, false), nft.One(nft.Jump(portChain(hostIf).Name)))}
}

// portRules are the rules of p's chain, in order: those of its IPv4
// address, of its IPv6 address, and the ethertype rule, which lets through
// ARP and IPv4 for a port with an IPv4 address and IPv6 for one with an
// IPv6 address.
func portRules(p Port) []nft.Rule {
	var rules []nft.Rule
	allowed := []uint16{}
	if p.IP.IsValid() {
		rules = append(rules, ipv4Rules(p)...)
		allowed = append(allowed, etherIPv4, etherARP)
	}
	if p.IP6.IsValid() {
		rules = append(rules, ipv6Rules(p)...)
		allowed = append(allowed, etherIPv6)
	}
	var ether []expr.Any
	for _, t := range allowed {
		ether = append(ether, etherType(expr.CmpOpNeq, t)...)
	}
	return append(rules, nft.Rule{Tag: portTag(p.HostIf, ReasonEtherType), Exprs: nft.Concat(ether, dropCounted())})
}

// ipv4Rules are the rules of p's IPv4 address.
func ipv4Rules(p Port) []nft.Rule {
	ip := p.IP.As4()
	zero := []byte{0, 0, 0, 0}
	mac := p.MAC[:]
	return []nft.Rule{
		// ARP: sender hardware address (offset 8) and sender protocol
		// address (offset 14) of an Ethernet/IPv4 ARP message; a probe's
		// sender address 0.0.0.0 passes (duplicate address detection).
		{Tag: portTag(p.HostIf, ReasonARPSender) + " mac", Exprs: nft.Concat(
			etherType(expr.CmpOpEq, etherARP), netField(8, 6, expr.CmpOpNeq, mac), dropCounted())},
		{Tag: portTag(p.HostIf, ReasonARPSender) + " ip", Exprs: nft.Concat(
			etherType(expr.CmpOpEq, etherARP), netField(14, 4, expr.CmpOpNeq, ip[:]), netField(14, 4, expr.CmpOpNeq, zero), dropCounted())},
		{Tag: portTag(p.HostIf, ReasonSrcIP), Exprs: nft.Concat(
			etherType(expr.CmpOpEq, etherIPv4), netField(12, 4, expr.CmpOpNeq, ip[:]), dropCounted())},
	}
}

// InstallPort makes p's anti-spoofing rules exist in the overlay
// namespace's table (creating the table and base chains if needed): its
// chain's rules first, then its source MAC rule and the rules that send
// its frames through its chain. Idempotent: rules already there,
// identical, are kept with their counters; rules for the same port with
// another MAC or address are replaced.
func InstallPort(c *nft.Conn, p Port) error {
	if err := p.check(); err != nil {
		return err
	}
	ch := portChain(p.HostIf)
	b := c.Begin()
	b.AddTable(ch.Table)
	for _, bc := range baseChains() {
		b.AddChain(bc)
	}
	b.AddChain(ch)
	if err := b.Commit(); err != nil {
		return fmt.Errorf("guard: anti-spoofing chains of %s: %w", p.HostIf, err)
	}
	if _, err := c.EnsureRules(ch, portRules(p)); err != nil {
		return fmt.Errorf("guard: anti-spoofing rules of %s: %w", p.HostIf, err)
	}
	if _, err := c.EnsureRules(macChain(), []nft.Rule{macRule(p)}); err != nil {
		return fmt.Errorf("guard: anti-spoofing MAC rule of %s: %w", p.HostIf, err)
	}
	for _, bc := range []nft.Chain{fwdChain(), inChain()} {
		if _, err := c.EnsureRules(bc, []nft.Rule{dispatch(p.HostIf)}); err != nil {
			return fmt.Errorf("guard: anti-spoofing dispatch of %s: %w", p.HostIf, err)
		}
	}
	return nil
}

// ofPort matches the tags of hostIf's rules in the base chains.
func ofPort(hostIf string) func(string) bool {
	return func(t string) bool { return t == hostIf || strings.HasPrefix(t, hostIf+" ") }
}

// RemovePort removes the rules of the port hostIf from the base chains,
// then its chain and rules; nothing of other ports is touched. When no
// port is left, the table goes too. A port without rules is not an error.
func RemovePort(c *nft.Conn, hostIf string) error {
	exists, err := c.TableExists(AntispoofTable())
	if err != nil || !exists {
		return err
	}
	for _, bc := range baseChains() {
		if _, err := c.DeleteTagged(bc, ofPort(hostIf)); err != nil {
			return fmt.Errorf("guard: anti-spoofing rules of %s: %w", hostIf, err)
		}
	}
	ch := portChain(hostIf)
	have, err := c.Chain(ch.Table, ch.Name)
	if err != nil {
		return err
	}
	if have != nil {
		rules, err := c.Rules(ch)
		if err != nil {
			return err
		}
		b := c.Begin()
		for _, r := range rules {
			b.DeleteRule(ch, r.Handle)
		}
		b.DeleteChain(ch)
		if err := b.Commit(); err != nil {
			return fmt.Errorf("guard: anti-spoofing chain of %s: %w", hostIf, err)
		}
	}
	// The last port gone, the table goes too: the namespace's ruleset is
	// as it was before the first attach.
	chains, err := c.Chains(AntispoofTable())
	if err != nil {
		return err
	}
	for _, x := range chains {
		if strings.HasPrefix(x.Name, portChainPrefix) {
			return nil
		}
	}
	for _, bc := range baseChains() {
		if rules, err := c.Rules(bc); err != nil || len(rules) > 0 {
			return err
		}
	}
	return RemoveAntispoof(c)
}

// PortRules is what status shows of one port: its rules' drops by reason.
type PortRules struct {
	HostIf string            `json:"host_if"`
	Rules  int               `json:"rules"`
	Drops  map[Reason]uint64 `json:"drops"`
	// Dispatched is true when the port's source MAC rule is in place and
	// the base chains send its frames through its rules.
	Dispatched bool `json:"dispatched"`
	// IPv4 and IPv6 say which families' rules the port's chain holds (a
	// port with an address of that family); the other family's frames
	// are dropped as an ethertype.
	IPv4 bool `json:"ipv4"`
	IPv6 bool `json:"ipv6"`
}

// Ports lists the guarded ports of the overlay namespace's table, with
// their drop counters (none if the table does not exist).
func Ports(c *nft.Conn) ([]PortRules, error) {
	exists, err := c.TableExists(AntispoofTable())
	if err != nil || !exists {
		return nil, err
	}
	chains, err := c.Chains(AntispoofTable())
	if err != nil {
		return nil, err
	}
	base := map[string][]nft.RuleInfo{}
	for _, bc := range baseChains() {
		if base[bc.Name], err = c.Rules(bc); err != nil {
			return nil, err
		}
	}
	count := func(pr *PortRules, rules []nft.RuleInfo) {
		for _, r := range rules {
			rest, ok := strings.CutPrefix(r.Tag, pr.HostIf+" ")
			if !ok {
				continue
			}
			reason, _, _ := strings.Cut(rest, " ")
			pr.Drops[Reason(reason)] += r.Packets
			pr.Rules++
		}
	}
	has := func(chain, tag string) bool {
		for _, r := range base[chain] {
			if r.Tag == tag {
				return true
			}
		}
		return false
	}
	var out []PortRules
	for _, ch := range chains {
		hostIf, ok := strings.CutPrefix(ch.Name, portChainPrefix)
		if !ok {
			continue
		}
		rules, err := c.Rules(ch)
		if err != nil {
			return nil, err
		}
		pr := PortRules{HostIf: hostIf, Drops: map[Reason]uint64{}}
		count(&pr, rules)
		count(&pr, base[macChain().Name])
		holds := func(tag string) bool {
			return slices.ContainsFunc(rules, func(r nft.RuleInfo) bool { return r.Tag == tag })
		}
		pr.IPv4, pr.IPv6 = holds(portTag(hostIf, ReasonSrcIP)), holds(portTag(hostIf, ReasonSrcIP)+" ip6")
		pr.Dispatched = has(macChain().Name, portTag(hostIf, ReasonSrcMAC)) && has(fwdChain().Name, hostIf) && has(inChain().Name, hostIf)
		out = append(out, pr)
	}
	return out, nil
}

// RemoveAntispoof deletes the anti-spoofing table (nothing else).
func RemoveAntispoof(c *nft.Conn) error { return c.DeleteTable(AntispoofTable()) }
