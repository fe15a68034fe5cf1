// Package rtnl is a thin rtnetlink (NETLINK_ROUTE) layer built on the standard
// library and golang.org/x/sys/unix alone.
//
// It frames netlink messages, encodes and decodes attributes without
// allocating, and speaks the parts of rtnetlink an overlay network needs:
// neighbours (ARP and vxlan FDB entries), links (bridge, vxlan, veth),
// addresses, routes, neighbour-table parameters and network namespaces.
//
// A Conn speaks to the kernel over a Transport. Dial opens a NETLINK_ROUTE
// socket bound to one network namespace and returns a Conn over it; NewConn
// returns one over any other Transport, such as the fake kernel of package
// rtnltest. Both run the same code: requests are sent with Conn.Execute
// (wait for the ACK), Conn.Dump (stream a multi-part dump) or
// Conn.ExecuteBatch (many requests per sendmsg, each ACK matched to its
// request; Batch.NeighReplaceARP and Batch.NeighReplaceFDB encode ARP and
// FDB entries in place, without allocating). Errors from the kernel are
// *OpError values that wrap the errno as a syscall.Errno, so
// errors.Is(err, syscall.EEXIST) works (unix.EEXIST is the same value on
// Linux), and carry the kernel's extended-ACK text.
//
// A Monitor reads the neighbour group: vxlan L2/L3 misses, app_solicit
// requests and neighbour changes, decoded without allocating. DialMonitor
// reads a socket in batches (recvmmsg); NewMonitor reads a Transport; one
// read loop serves both, overruns (ENOBUFS) included.
//
// The codec, Conn, Batch, Monitor and Transport build and work on every
// system whose syscall package has an Errno (all but plan9): rtnl defines
// the Linux numbers it needs itself (MsgNewNeigh, FlagCreate, FamilyBridge,
// ...) and translates the kernel's error numbers (ErrnoFromLinux). Sockets
// and network namespaces need Linux; elsewhere Dial, DialMonitor and the
// NetNS functions fail with ErrNotSupported.
package rtnl
