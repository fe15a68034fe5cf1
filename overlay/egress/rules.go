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

// acceptRules are the flannel-style accept rules for subnet in a host
// forward chain of family f: from the subnet, and to it.
func acceptRules(f nft.Family, subnet netip.Prefix) ([]nft.Rule, error) {
	src, err := nft.SrcPrefix(subnet, false)
	if err != nil {
		return nil, err
	}
	dst, err := nft.DstPrefix(subnet, false)
	if err != nil {
		return nil, err
	}
	var pre []expr.Any
	if f == nft.FamilyINet {
		pre = nft.IPv4()
	}
	return []nft.Rule{
		{Tag: acceptTagPrefix + "from " + subnet.String(), Exprs: nft.Concat(pre, src, nft.One(nft.Counter(), nft.Accept()))},
		{Tag: acceptTagPrefix + "to " + subnet.String(), Exprs: nft.Concat(pre, dst, nft.One(nft.Counter(), nft.Accept()))},
	}, nil
}

// iptablesEquivalent says what an operator adds by hand in place of r.
func iptablesEquivalent(ch nft.Chain, subnet netip.Prefix, i int) string {
	flag := "-s"
	if i == 1 {
		flag = "-d"
	}
	if ch.Table.Family == nft.FamilyIPv4 && ch.Table.Name == "filter" {
		return fmt.Sprintf("iptables -A %s %s %s -j ACCEPT", ch.Name, flag, subnet)
	}
	word := "saddr"
	if i == 1 {
		word = "daddr"
	}
	return fmt.Sprintf("nft add rule %s %s %s ip %s %s accept", ch.Table.Family, ch.Table.Name, ch.Name, word, subnet)
}

// dropForwardChains lists the base chains at the forward hook whose policy
// is drop, in the ip and inet families, outside overlaynet's own tables.
func dropForwardChains(c *nft.Conn) ([]nft.Chain, error) {
	var out []nft.Chain
	for _, f := range []nft.Family{nft.FamilyIPv4, nft.FamilyINet} {
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
