package egress

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/google/nftables/expr"
	"github.com/overlaynet/overlaynet/overlay/nft"
)

// Rule tags: the nft comments of egress's rules.
const (
	masqTag         = "overlaynet-egress masquerade"
	masq6Tag        = "overlaynet-egress masquerade ipv6"
	acceptTagPrefix = "overlaynet-egress accept "
)

// postrouting is egress's nat chain.
func postrouting() nft.Chain {
	return nft.Chain{Table: Table(), Name: "postrouting", Base: &nft.Base{
		Type: nft.ChainNAT, Hook: nft.HookPostrouting, Priority: nft.PrioritySrcNAT, Policy: nft.PolicyAccept}}
}

// masqRule masquerades IPv4 packets from subnet to anything outside it
// leaving by dev.
func masqRule(subnet netip.Prefix, dev string) (nft.Rule, error) {
	src, err := nft.SrcPrefix(subnet, false)
	if err != nil {
		return nft.Rule{}, err
	}
	dst, err := nft.DstPrefix(subnet, true)
	if err != nil {
		return nft.Rule{}, err
	}
	return nft.Rule{Tag: masqTag, Exprs: nft.Concat(nft.IPv4(), src, dst, nft.OIFName(dev, false),
		nft.One(nft.Counter(), nft.Masquerade()))}, nil
}

// masqRule6 masquerades IPv6 packets from the prefix subnet6 to anything
// outside it leaving by dev (NAT66, to the address the kernel picks on
// dev for the destination).
func masqRule6(subnet6 netip.Prefix, dev string) (nft.Rule, error) {
	src, err := nft.SrcPrefix6(subnet6, false)
	if err != nil {
		return nft.Rule{}, err
	}
	dst, err := nft.DstPrefix6(subnet6, true)
	if err != nil {
		return nft.Rule{}, err
	}
	return nft.Rule{Tag: masq6Tag, Exprs: nft.Concat(nft.IPv6(), src, dst, nft.OIFName(dev, false),
		nft.One(nft.Counter(), nft.Masquerade()))}, nil
}

// acceptRule is one flannel-style accept rule, with what it accepts.
type acceptRule struct {
	nft.Rule
	prefix netip.Prefix
	to     bool // destination (else source) in prefix
}

// acceptRules are the flannel-style accept rules in a host forward chain
// of family f: from the subnet and to it, and the same for the IPv6 prefix
// subnet6 if valid; an ip chain gets IPv4's, an ip6 chain IPv6's, an inet
// chain both (each restricted to its family).
func acceptRules(f nft.Family, subnet, subnet6 netip.Prefix) ([]acceptRule, error) {
	var out []acceptRule
	type family struct {
		prefix   netip.Prefix
		nfproto  []expr.Any
		familyOK bool
	}
	for _, fam := range []family{
		{subnet, nft.IPv4(), f == nft.FamilyIPv4 || f == nft.FamilyINet},
		{subnet6, nft.IPv6(), f == nft.FamilyIPv6 || f == nft.FamilyINet},
	} {
		if !fam.familyOK || !fam.prefix.IsValid() {
			continue
		}
		var pre []expr.Any
		if f == nft.FamilyINet {
			pre = fam.nfproto
		}
		for _, to := range []bool{false, true} {
			m, err := prefixMatch(fam.prefix, to)
			if err != nil {
				return nil, err
			}
			word := "from "
			if to {
				word = "to "
			}
			out = append(out, acceptRule{Rule: nft.Rule{Tag: acceptTagPrefix + word + fam.prefix.Masked().String(),
				Exprs: nft.Concat(pre, m, nft.One(nft.Counter(), nft.Accept()))}, prefix: fam.prefix.Masked(), to: to})
		}
	}
	return out, nil
}

// prefixMatch matches p as the source, or the destination with to, in p's
// family.
func prefixMatch(p netip.Prefix, to bool) ([]expr.Any, error) {
	switch {
	case p.Addr().Is4() && to:
		return nft.DstPrefix(p, false)
	case p.Addr().Is4():
		return nft.SrcPrefix(p, false)
	case to:
		return nft.DstPrefix6(p, false)
	}
	return nft.SrcPrefix6(p, false)
}

// iptablesEquivalent says what an operator adds by hand in place of r.
func iptablesEquivalent(ch nft.Chain, r acceptRule) string {
	flag, word, ipt, nftFam := "-s", "saddr", "iptables", "ip"
	if r.to {
		flag, word = "-d", "daddr"
	}
	if r.prefix.Addr().Is6() {
		ipt, nftFam = "ip6tables", "ip6"
	}
	if (ch.Table.Family == nft.FamilyIPv4 || ch.Table.Family == nft.FamilyIPv6) && ch.Table.Name == "filter" {
		return fmt.Sprintf("%s -A %s %s %s -j ACCEPT", ipt, ch.Name, flag, r.prefix)
	}
	return fmt.Sprintf("nft add rule %s %s %s %s %s %s accept", ch.Table.Family, ch.Table.Name, ch.Name, nftFam, word, r.prefix)
}

// dropForwardChains lists the base chains at the forward hook whose policy
// is drop, in the ip, ip6 and inet families, outside overlaynet's own
// tables.
func dropForwardChains(c *nft.Conn) ([]nft.Chain, error) {
	var out []nft.Chain
	for _, f := range []nft.Family{nft.FamilyIPv4, nft.FamilyIPv6, nft.FamilyINet} {
		chains, err := c.ChainsOfFamily(f)
		if err != nil {
			return nil, err
		}
		for _, ch := range chains {
			if ch.Table.Owned() || ch.Base == nil || ch.Base.Hook != nft.HookForward || ch.Base.Policy != nft.PolicyDrop {
				continue
			}
			out = append(out, nft.Chain{Table: ch.Table, Name: ch.Name})
		}
	}
	return out, nil
}

// hasRule reports whether rules hold a rule with want's expressions,
// counters and comment matches aside (as an operator's own `iptables -A
// FORWARD -s SUBNET -m comment --comment ... -j ACCEPT` has them).
func hasRule(f nft.Family, rules []nft.RuleInfo, want nft.Rule) bool {
	w, err := encodeBare(f, want.Exprs)
	if err != nil {
		return false
	}
	for _, r := range rules {
		if h, err := encodeBare(f, r.Exprs); err == nil && bytes.Equal(h, w) {
			return true
		}
	}
	return false
}

func encodeBare(f nft.Family, es []expr.Any) ([]byte, error) {
	var out []byte
	for _, e := range es {
		switch x := e.(type) {
		case *expr.Counter:
			continue
		case *expr.Match:
			if x.Name == "comment" {
				continue
			}
		}
		b, err := expr.Marshal(byte(f), e)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}
