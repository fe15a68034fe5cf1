package rtnl

import "syscall"

// LinkInetConf returns the IPv4 settings of device index (what
// /proc/sys/net/ipv4/conf/DEV/ shows), read with RTM_GETLINK.
func (c *Conn) LinkInetConf(index int32) (InetDevConf, error) {
	return linkConf(c, index, DecodeInetDevConf)
}

// LinkInet6Conf returns the IPv6 settings of device index (what
// /proc/sys/net/ipv6/conf/DEV/ shows), read with RTM_GETLINK. The kernel
// has no netlink request that changes them (see DecodeInet6DevConf).
func (c *Conn) LinkInet6Conf(index int32) (Inet6DevConf, error) {
	return linkConf(c, index, DecodeInet6DevConf)
}

// linkConf asks for device index and decodes the reply's settings.
func linkConf[T any](c *Conn, index int32, decode func([]byte) (T, error)) (T, error) {
	var (
		out  T
		derr error
		seen bool
	)
	req, err := (&LinkMessage{Index: index}).MarshalBinary()
	if err != nil {
		return out, err
	}
	err = c.Request(MsgGetLink, 0, req, func(msg Message) error {
		if msg.Header.Type != MsgNewLink || seen {
			return nil
		}
		seen = true
		out, derr = decode(msg.Data)
		return nil
	})
	if err != nil {
		return out, err
	}
	if !seen {
		return out, &OpError{Op: "RTM_GETLINK", Err: syscall.ENODEV}
	}
	return out, derr
}

// LinkSetInetConf changes IPv4 settings of device index (RTM_NEWLINK with
// IFLA_AF_SPEC/AF_INET/IFLA_INET_CONF): the netlink equivalent of writing
// /proc/sys/net/ipv4/conf/DEV/NAME, without the side effects a write there
// has for "forwarding" on "all" (every device changes).
func (c *Conn) LinkSetInetConf(index int32, vals ...DevConfValue) error {
	var buf [128]byte
	b, err := EncodeLinkInetConf(buf[:0], index, vals...)
	if err != nil {
		return err
	}
	return c.Execute(MsgNewLink, 0, b)
}

// LinkSetAddrGenMode sets the IPv6 address generation mode of device index
// (RTM_NEWLINK with IFLA_AF_SPEC/AF_INET6/IFLA_INET6_ADDR_GEN_MODE, `ip
// link set DEV addrgenmode MODE`). The kernel refuses it (EAFNOSUPPORT)
// for a device without IPv6.
func (c *Conn) LinkSetAddrGenMode(index int32, mode AddrGenMode) error {
	var buf [64]byte
	b, err := EncodeLinkAddrGenMode(buf[:0], index, mode)
	if err != nil {
		return err
	}
	return c.Execute(MsgNewLink, 0, b)
}
