package nft

import (
	"fmt"
	"strings"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// TablePrefix starts the name of every table overlaynet owns; DeleteTable
// refuses any other.
const TablePrefix = "overlaynet"

// FeatureTable returns the table feature owns in family f,
// "overlaynet-FEATURE" ("overlaynet-egress", "overlaynet-guard"). Each
// feature has tables of its own, so that it changes and removes them in
// transactions of its own without coordinating with the others.
func FeatureTable(f Family, feature string) Table {
	return Table{Family: f, Name: TablePrefix + "-" + feature}
}

// Owned reports whether t is one of overlaynet's tables.
func (t Table) Owned() bool {
	return t.Name == TablePrefix || strings.HasPrefix(t.Name, TablePrefix+"-")
}

// Family is an nftables address family.
type Family uint8

// Families a table can have.
const (
	FamilyINet   Family = unix.NFPROTO_INET
	FamilyIPv4   Family = unix.NFPROTO_IPV4
	FamilyIPv6   Family = unix.NFPROTO_IPV6
	FamilyARP    Family = unix.NFPROTO_ARP
	FamilyNetdev Family = unix.NFPROTO_NETDEV
	FamilyBridge Family = unix.NFPROTO_BRIDGE
)

// String returns the family as nft spells it ("inet", "ip", ...).
func (f Family) String() string {
	switch f {
	case FamilyINet:
		return "inet"
	case FamilyIPv4:
		return "ip"
	case FamilyIPv6:
		return "ip6"
	case FamilyARP:
		return "arp"
	case FamilyNetdev:
		return "netdev"
	case FamilyBridge:
		return "bridge"
	}
	return fmt.Sprintf("family(%d)", uint8(f))
}

// Hook is where a base chain sees packets.
type Hook uint32

// Hooks of the inet, ip, ip6 and bridge families; netdev has Ingress and
// Egress.
const (
	HookPrerouting  Hook = unix.NF_INET_PRE_ROUTING
	HookInput       Hook = unix.NF_INET_LOCAL_IN
	HookForward     Hook = unix.NF_INET_FORWARD
	HookOutput      Hook = unix.NF_INET_LOCAL_OUT
	HookPostrouting Hook = unix.NF_INET_POST_ROUTING
	HookIngress     Hook = unix.NF_NETDEV_INGRESS
	HookEgress      Hook = unix.NF_NETDEV_EGRESS
)

// String returns the hook's nft name. Ingress and egress share numbers with
// prerouting and input; they are told apart by the family (netdev).
func (h Hook) String() string {
	switch h {
	case HookPrerouting:
		return "prerouting"
	case HookInput:
		return "input"
	case HookForward:
		return "forward"
	case HookOutput:
		return "output"
	case HookPostrouting:
		return "postrouting"
	}
	return fmt.Sprintf("hook(%d)", uint32(h))
}

// ChainType is a base chain's type.
type ChainType string

// Chain types.
const (
	ChainFilter ChainType = "filter"
	ChainNAT    ChainType = "nat"
	ChainRoute  ChainType = "route"
)

// String returns the type's nft name.
func (t ChainType) String() string { return string(t) }

// Policy is a base chain's verdict for packets no rule decided.
type Policy uint32

// Policies.
const (
	PolicyDrop   Policy = Policy(nftables.ChainPolicyDrop)
	PolicyAccept Policy = Policy(nftables.ChainPolicyAccept)
)

// String returns "accept" or "drop".
func (p Policy) String() string {
	switch p {
	case PolicyDrop:
		return "drop"
	case PolicyAccept:
		return "accept"
	}
	return fmt.Sprintf("policy(%d)", uint32(p))
}

// Priority values nft names.
const (
	PriorityRaw      int32 = -300
	PriorityMangle   int32 = -150
	PriorityDstNAT   int32 = -100
	PriorityFilter   int32 = 0
	PrioritySrcNAT   int32 = 100
	PrioritySecurity int32 = 50
)
