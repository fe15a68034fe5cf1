// Package overlay builds a node of a VXLAN overlay through rtnl, without
// iproute2: the overlay network namespace with a bridge (the subnet's
// gateway) and a vxlan device (Node.Create), containers attached to it by a
// veth pair (Node.Attach, Node.Detach), a read-back of what is there
// (Node.Status), the state directory that remembers it, and a clean-up of
// what this package created (Node.Reset). Containers are recorded in a
// shared registry.Registry so that miss resolvers on other nodes (package
// resolver) can find them. With Config.Egress set, Create also gives the
// containers a way out and the node a way in (package egress), recorded in
// the state directory and removed by Reset. An attach without an address
// gets one from the node's address blocks in the registry (package ipam,
// Node.Allocator); a container runtime's namespace is attached by path
// (AttachRequest.NetNSPath, the CNI plugin cmd/overlaynet) and checked
// against the kernel and the registry (Node.Check). Create, Attach, Detach,
// Reset and Sweep hold a lock in the state directory, and the resolver
// daemon holds LockDaemon's while it runs (DaemonRunning finds it,
// StopDaemon stops it). Create and Attach are all or nothing: each checks
// everything it can before changing anything, then makes its changes as
// named steps (internal/steps), undone newest first when one fails. Attach
// and Detach record each step before making it (a record of intent), so
// that one killed half-way is undone or finished by whoever comes next: the
// next Attach or Detach of the name, Reset, or Sweep, which also removes
// what no endpoint owns (the daemon runs it; Status lists what is
// half-made); Create records itself too (creating.json), so that a create
// killed before it recorded the overlay is finished by the next Create or
// undone by Reset.
//
// With Config.Encrypt the overlay runs inside WireGuard (package
// wireguard): Create makes the node's key once, claims its tunnel address
// in the store with its member record (registry.MemberStore) and brings
// the WireGuard device up (the kernel's, or a userspace process it starts);
// the vxlan runs between tunnel addresses, which are then the VTEPs.
// EnsureTunnel brings the device back as recorded (the daemon runs it at
// start and whenever the device process exits), Rekey replaces the key,
// Reset removes device, member record and keys.
//
// StoreOptions gives registry.Open the overlay a node's state directory
// records, so that every command of the node opens the store for its own
// overlay.
//
// An overlay is IPv4, or dual-stack with Config.Gateway6 (family.go): its
// containers then have an address of each family (Endpoint.IP6, a registry
// record per address), usable at once (no duplicate address detection, no
// link-local address on the overlay's devices), and its underlay may be
// IPv6 (the VTEP's family, agreed by every node in Network).
//
// The process is expected to run in the node's "host" network namespace:
// the vxlan device is created there (its UDP socket lives there) and moved
// into the overlay namespace, as `ip link add dev vxlan1 netns overns type
// vxlan ...` does.
package overlay
