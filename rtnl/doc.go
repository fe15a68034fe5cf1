// Package rtnl is a thin rtnetlink (NETLINK_ROUTE) layer built on the standard
// library and golang.org/x/sys/unix alone.
//
// It frames netlink messages, encodes and decodes attributes without
// allocating, and speaks the parts of rtnetlink an overlay network needs:
// neighbours (ARP and vxlan FDB entries), links (bridge, vxlan, veth),
// addresses, routes, neighbour-table parameters and network namespaces.
//
// A Conn is one NETLINK_ROUTE socket bound to one network namespace. Requests
// are sent with Conn.Execute (wait for the ACK), Conn.Dump (stream a
// multi-part dump) or Conn.ExecuteBatch (many requests per sendmsg, each ACK
// matched to its request). Errors from the kernel are *OpError values that wrap
// the errno, so errors.Is(err, unix.EEXIST) works, and carry the kernel's
// extended-ACK text.
package rtnl
