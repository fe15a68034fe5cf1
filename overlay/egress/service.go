package egress

import (
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/overlay/nft"
)

// The service return path. A container's packet to a Service (ClusterIP,
// NodePort) leaves the overlay by the node path, and the node's own rules
// (kube-proxy's) translate its destination to a container, on this node or
// another, back through the node path: the reply would go from that
// container straight to the sender over the overlay, past the node whose
// connection tracking must undo the translation. So the node translates
// the source too, to an overlay address of its own (the node address: in
// its podCIDR, which every node resolves to it), and the reply comes back
// to this node, over the overlay, to the node path: ServiceReturn's rule,
// in egress's table, at a priority before the usual source NAT chains
// (kube-proxy's masquerade), so that it decides.

// serviceTag is the nft comment of the service return rule.
const serviceTag = "overlaynet-egress service return"

// serviceChain is egress's nat chain for the service return rule.
func serviceChain() nft.Chain {
	return nft.Chain{Table: Table(), Name: "service", Base: &nft.Base{
		Type: nft.ChainNAT, Hook: nft.HookPostrouting, Priority: nft.PrioritySrcNAT - 10, Policy: nft.PolicyAccept}}
}

// serviceRule translates to node the source of translated-destination
// packets for the subnet going into the overlay by hostIf.
func serviceRule(subnet netip.Prefix, hostIf string, node netip.Addr) (nft.Rule, error) {
	dst, err := nft.DstPrefix(subnet, false)
	if err != nil {
		return nft.Rule{}, err
	}
	snat, err := nft.SNAT(node)
	if err != nil {
		return nft.Rule{}, err
	}
	return nft.Rule{Tag: serviceTag, Exprs: nft.Concat(nft.IPv4(), dst, nft.OIFName(hostIf, false), nft.CtStatusDNAT(),
		nft.One(nft.Counter()), snat)}, nil
}

// EnsureServiceReturn puts the service return rule for subnet, by the node
// path of st, to the node address node, in egress's table (in the calling
// thread's namespace, the node's): idempotent; a rule for another node
// address is replaced. Teardown removes it with the table.
func EnsureServiceReturn(st *State, subnet netip.Prefix, node netip.Addr) (added bool, err error) {
	if st == nil {
		return false, fmt.Errorf("egress: the service return path needs egress's table (create without --no-egress)")
	}
	rule, err := serviceRule(subnet, st.HostIf, node)
	if err != nil {
		return false, err
	}
	err = withNFT(func(nc *nft.Conn) error {
		b := nc.Begin()
		b.AddChain(serviceChain())
		if err := b.Commit(); err != nil {
			return fmt.Errorf("egress: chain %s: %w", serviceChain(), err)
		}
		n, err := nc.EnsureRules(serviceChain(), []nft.Rule{rule})
		added = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("egress: service return rule: %w", err)
	}
	return added, nil
}
