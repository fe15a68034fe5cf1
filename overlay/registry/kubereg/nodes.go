package kubereg

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// The annotations overlaynet puts on a Node (its own daemon, through the
// nodes/status subresource).
const (
	// AnnotationVTEP is the node's VTEP: its underlay IPv4 address.
	AnnotationVTEP = "overlaynet.io/vtep"
	// AnnotationNetwork is the overlay's network the node runs, as JSON
	// ({"vni":42,"port":4789,"mtu":1450,"gateway":"10.244.0.1/16"}).
	AnnotationNetwork = "overlaynet.io/network"
	// annotationPrefix starts every annotation of overlaynet's.
	annotationPrefix = "overlaynet.io/"
	// maxAnnotation bounds what is parsed of an annotation's value.
	maxAnnotation = 512
)

// NodeState says whether a Node contributes its span, and why not.
type NodeState uint8

// States of a Node.
const (
	NodeOK              NodeState = iota // its span is in the feed
	NodeNoVTEP                           // not annotated yet: no daemon runs there (yet)
	NodeNoPodCIDR                        // no spec.podCIDR (yet)
	NodeBadVTEP                          // the VTEP annotation is no unicast IPv4 address
	NodeBadNetwork                       // the network annotation is missing or malformed
	NodeBadPodCIDR                       // spec.podCIDRs holds no IPv4 network prefix
	NodeNetworkMismatch                  // it runs another overlay than this daemon
	NodeOutsideSubnet                    // its podCIDR is not inside the overlay's subnet
	NodeOverlap                          // an older Node's podCIDR overlaps its own
	NodeVTEPConflict                     // an older Node has its VTEP
	nodeStates
)

// String names s as the metrics label it is.
func (s NodeState) String() string {
	names := [nodeStates]string{"ok", "no_vtep", "no_podcidr", "bad_vtep", "bad_network", "bad_podcidr",
		"network_mismatch", "outside_subnet", "overlap", "vtep_conflict"}
	if s < nodeStates {
		return names[s]
	}
	return "NodeState(" + strconv.Itoa(int(s)) + ")"
}

// nodeInfo is what the registry keeps of a Node: what it parsed, not the
// object.
type nodeInfo struct {
	name     string
	created  time.Time
	vtep     netip.Addr
	network  registry.Network
	podCIDRs []netip.Prefix // all of them, as the Node has them
	span     netip.Prefix   // the IPv4 podCIDR its span covers
	state    NodeState      // of what it holds on its own (NodeOK if sound)
	deleting bool
	// member is its member annotation (AnnotationMember) when hasMember;
	// badMember: it has one that is no member.
	member               registry.Member
	hasMember, badMember bool
}

// same says whether a and b contribute the same (the rest of a Node
// changes all the time: heartbeats).
func (a nodeInfo) same(b nodeInfo) bool {
	return a.name == b.name && a.created.Equal(b.created) && a.vtep == b.vtep && a.network == b.network &&
		slices.Equal(a.podCIDRs, b.podCIDRs) && a.span == b.span && a.state == b.state && a.deleting == b.deleting &&
		a.member == b.member && a.hasMember == b.hasMember && a.badMember == b.badMember
}

// parseNode reads what overlaynet uses of a Node.
func parseNode(n *nodeObject) nodeInfo {
	ni := nodeInfo{name: n.Name, created: n.CreationTimestamp, deleting: n.DeletionTimestamp != nil}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	badCIDR := false
	for _, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil || p != p.Masked() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			badCIDR = true
			continue
		}
		ni.podCIDRs = append(ni.podCIDRs, p)
		if p.Addr().Is4() && !ni.span.IsValid() {
			ni.span = p
		}
	}
	vtepText, hasVTEP := n.Annotations[AnnotationVTEP]
	netText, hasNet := n.Annotations[AnnotationNetwork]
	memberText, hasMember := n.Annotations[AnnotationMember]
	ni.member, ni.hasMember, ni.badMember = parseMember(memberText, hasMember)
	var tunnel netip.Prefix // an encrypted overlay's VTEPs are tunnel addresses, link-local ones too
	if hasNet && validNetwork(netText, &ni.network) && ni.network.Encrypt {
		tunnel = ni.network.Tunnel
	}
	switch {
	case !hasVTEP:
		ni.state = NodeNoVTEP
	case !validVTEP(vtepText, tunnel, &ni.vtep):
		ni.state = NodeBadVTEP
	case !hasNet || !validNetwork(netText, &ni.network):
		ni.state = NodeBadNetwork
	case len(cidrs) == 0:
		ni.state = NodeNoPodCIDR
	case !ni.span.IsValid() || badCIDR:
		ni.state = NodeBadPodCIDR
	}
	return ni
}

// validVTEP parses a VTEP annotation into v: a unicast IPv4 address, not
// link-local unless it is inside tunnel (an encrypted overlay's).
func validVTEP(s string, tunnel netip.Prefix, v *netip.Addr) bool {
	if len(s) > maxAnnotation {
		return false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	if a.IsLinkLocalUnicast() && !tunnel.Contains(a) {
		return false
	}
	*v = a
	return true
}

// validNetwork parses a network annotation into n.
func validNetwork(s string, n *registry.Network) bool {
	if len(s) > maxAnnotation {
		return false
	}
	var v registry.Network
	if err := json.Unmarshal([]byte(s), &v); err != nil || v.VNI == 0 || v.Port == 0 || !v.Gateway.IsValid() {
		return false
	}
	*n = v
	return true
}

// older orders nodes by age (creation, then name): the older one keeps a
// podCIDR or VTEP two claim.
func older(a, b nodeInfo) int {
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// effective decides which nodes contribute their span, given ours (the
// network this daemon runs; zero before it published): each node's final
// state, and the spans of those that are NodeOK, by node name.
func effective(nodes map[string]nodeInfo, ours registry.Network) (map[string]NodeState, map[string]registry.Span) {
	states := make(map[string]NodeState, len(nodes))
	sound := make([]nodeInfo, 0, len(nodes))
	subnet := ours.Gateway.Masked()
	for name, ni := range nodes {
		st := ni.state
		switch {
		case st != NodeOK:
		case ours != (registry.Network{}) && ni.network != ours:
			st = NodeNetworkMismatch
		case ours != (registry.Network{}) && (ni.span.Bits() < subnet.Bits() || !subnet.Contains(ni.span.Addr())):
			st = NodeOutsideSubnet
		}
		states[name] = st
		if st == NodeOK {
			sound = append(sound, ni)
		}
	}
	slices.SortFunc(sound, older)
	spans := make(map[string]registry.Span, len(sound))
	index := registry.NewSpans()
	vteps := make(map[netip.Addr]bool, len(sound))
	for _, ni := range sound {
		_, same := index.Get(ni.span)
		_, overlaps := index.Overlapping(ni.span)
		switch {
		case same || overlaps:
			states[ni.name] = NodeOverlap
		case vteps[ni.vtep]:
			states[ni.name] = NodeVTEPConflict
		default:
			s := registry.Span{Prefix: ni.span, VTEP: ni.vtep, Node: ni.name}
			index.Put(s)
			vteps[ni.vtep] = true
			spans[ni.name] = s
		}
	}
	return states, spans
}
