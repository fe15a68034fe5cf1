// Package kubereg is the Kubernetes store of the node daemon (kube:KUBECONFIG,
// or kube: for the in-cluster service account): the cluster's Node objects
// are the registry, followed by one list and watch of Nodes (nothing else,
// through the package's own client, internal/kubeapi: no client-go). Nothing
// is written per container:
//
//   - a node's containers take their addresses from its podCIDR (set by
//     kube-controller-manager's --allocate-node-cidrs), and their MACs are
//     derived from the addresses (registry.DeriveMAC), so each Node is one
//     registry.Span: its podCIDR at its VTEP. The change feed (Watch)
//     delivers spans; the resolver answers every miss from them, in
//     memory, and reconciles the kernel's entries against them;
//   - the daemon publishes its node's VTEP and the overlay's network as
//     annotations of its own Node (AnnotationVTEP, AnnotationNetwork),
//     through the nodes/status subresource (PublishNetwork), after checking
//     the network against every other node's: nodes cannot disagree;
//   - in an encrypted overlay, the daemon also annotates its Node with its
//     member record (AnnotationMember: tunnel address, WireGuard public key
//     and endpoint; ClaimMember), the peers follow the Nodes' (Members,
//     WatchMembers; the older Node keeps a tunnel address two claim);
//   - once up, it sets the Node's NetworkUnavailable condition to False
//     (Announce);
//   - it records what the node's processes without API credentials need
//     (the podCIDRs, the VTEP, the network) in the state directory, for
//     package kubenode.
//
// A Node contributes its span only when it is sound: an IPv4 VTEP
// annotation and a network annotation equal to this daemon's, a podCIDR
// inside the overlay's subnet, no VTEP or podCIDR an older Node holds
// already. The others are skipped and counted by reason (NodeStates,
// Collector): a hostile or broken Node programs nothing anywhere.
//
// The API requests it makes: the list and watch of Nodes, and
// two patches of its own Node's status at start. None per container, none
// per miss, none at idle beyond the watch. RBAC: nodes get, list, watch;
// nodes/status patch.
package kubereg
