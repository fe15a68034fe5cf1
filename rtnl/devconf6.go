package rtnl

import (
	"errors"
	"fmt"
)

// iflaInet6Conf is IFLA_INET6_CONF, the attribute of IFLA_AF_SPEC/AF_INET6
// that holds a device's IPv6 settings.
const iflaInet6Conf = 2

// DevConf6 names an IPv6 per-device setting (DEVCONF_*, the files of
// /proc/sys/net/ipv6/conf/DEV/): its index in the kernel's IFLA_INET6_CONF
// array. golang.org/x/sys/unix does not define them.
type DevConf6 uint16

// IPv6 per-device settings overlaynet reads.
const (
	DevConf6Forwarding      DevConf6 = 0  // forwarding: the device's host/router behaviour (not whether packets are forwarded)
	DevConf6HopLimit        DevConf6 = 1  // hop_limit
	DevConf6MTU             DevConf6 = 2  // mtu
	DevConf6AcceptRA        DevConf6 = 3  // accept_ra
	DevConf6AcceptRedirects DevConf6 = 4  // accept_redirects
	DevConf6Autoconf        DevConf6 = 5  // autoconf
	DevConf6DADTransmits    DevConf6 = 6  // dad_transmits
	DevConf6ProxyNDP        DevConf6 = 22 // proxy_ndp
	DevConf6MCForwarding    DevConf6 = 25 // mc_forwarding (read-only)
	DevConf6DisableIPv6     DevConf6 = 26 // disable_ipv6
	DevConf6AcceptDAD       DevConf6 = 27 // accept_dad
	DevConf6AddrGenMode     DevConf6 = 47 // addr_gen_mode
	// DevConf6ForceForwarding (Linux 6.17 and later): packets received on
	// the device are forwarded whatever conf/all/forwarding says; the
	// per-device switch IPv4's forwarding is.
	DevConf6ForceForwarding DevConf6 = 59 // force_forwarding
)

// String returns the setting's sysctl name ("forwarding",
// "force_forwarding").
func (d DevConf6) String() string {
	switch d {
	case DevConf6Forwarding:
		return "forwarding"
	case DevConf6HopLimit:
		return "hop_limit"
	case DevConf6MTU:
		return "mtu"
	case DevConf6AcceptRA:
		return "accept_ra"
	case DevConf6AcceptRedirects:
		return "accept_redirects"
	case DevConf6Autoconf:
		return "autoconf"
	case DevConf6DADTransmits:
		return "dad_transmits"
	case DevConf6ProxyNDP:
		return "proxy_ndp"
	case DevConf6MCForwarding:
		return "mc_forwarding"
	case DevConf6DisableIPv6:
		return "disable_ipv6"
	case DevConf6AcceptDAD:
		return "accept_dad"
	case DevConf6AddrGenMode:
		return "addr_gen_mode"
	case DevConf6ForceForwarding:
		return "force_forwarding"
	}
	return fmt.Sprintf("devconf6(%d)", uint16(d))
}

// Inet6DevConf is a device's IPv6 settings as RTM_GETLINK reports them in
// IFLA_AF_SPEC / AF_INET6 / IFLA_INET6_CONF: setting d at Values[d]. A
// kernel reports the settings it knows: an older one has a shorter array
// (Get says which it lacks).
type Inet6DevConf struct {
	Values []uint32
}

// Get returns setting d, and false if the kernel did not report it (a
// setting newer than the kernel).
func (c Inet6DevConf) Get(d DevConf6) (uint32, bool) {
	if int(d) >= len(c.Values) {
		return 0, false
	}
	return c.Values[d], true
}

// ErrNoInet6Conf is returned when a link message carries no IPv6 settings
// (a device without IPv6, IPv6 disabled in the kernel, or a message that is
// not a full RTM_NEWLINK).
var ErrNoInet6Conf = errors.New("rtnl: link message has no IPv6 device settings (IFLA_AF_SPEC/AF_INET6)")

// DecodeInet6DevConf reads the IPv6 settings out of a link message body
// (ifinfomsg and attributes): the kernel's array of u32 (s32 values, read
// as their bits) indexed by DEVCONF_*. It never panics.
//
// The kernel reports these settings over netlink but takes none of them
// back: RTM_NEWLINK's AF_INET6 part accepts only the address generation
// mode and the token (EncodeLinkAddrGenMode), and fails with EINVAL given
// IFLA_INET6_CONF, so there is no encoder here.
func DecodeInet6DevConf(b []byte) (Inet6DevConf, error) {
	conf, found, err := afConf(b, FamilyInet6, iflaInet6Conf)
	switch {
	case err != nil:
		return Inet6DevConf{}, err
	case !found:
		return Inet6DevConf{}, ErrNoInet6Conf
	case conf.Nested():
		return Inet6DevConf{}, errors.New("rtnl: IFLA_INET6_CONF is nested: the kernel sends a u32 array")
	}
	values, err := u32Array("IFLA_INET6_CONF", conf.Bytes())
	return Inet6DevConf{Values: values}, err
}
