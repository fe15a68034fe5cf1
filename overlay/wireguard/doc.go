// Package wireguard owns the WireGuard side of an encrypted overlay: the
// node's keys (Curve25519, made with crypto/rand, kept in a file of mode
// 0600 and never printed), the device that carries the overlay's VXLAN
// between the nodes' tunnel addresses, and its configuration.
//
// A device has one of two providers (Provider): the kernel's WireGuard,
// when RTM_NEWLINK of kind "wireguard" succeeds, configured over generic
// netlink (the "wireguard" family, as wg(8) speaks it: Kernel); else
// userspace WireGuard (golang.zx2c4.com/wireguard) in a process of its own,
// `overlayd wireguard`, which the node's commands start and its daemon
// supervises (Process), configured over its UAPI socket
// (/var/run/wireguard/NAME.sock, as wg(8) speaks it: UAPI). That process
// outlives the daemon: a daemon restart never cuts traffic.
//
// Both are driven through Client: Device reads a device (its key, port and
// peers with their last handshake and bytes), Configure changes it. Plan
// turns the peers a node wants (from the overlay's member records) and what
// the device holds into the smallest Config that makes the one the other.
package wireguard
