package rtnl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// iflaInetConf is IFLA_INET_CONF, the attribute of IFLA_AF_SPEC/AF_INET
// that holds the IPv4 settings.
const iflaInetConf = 1

// DevConf names an IPv4 per-device setting (IPV4_DEVCONF_*, the files of
// /proc/sys/net/ipv4/conf/DEV/), which golang.org/x/sys/unix does not
// define.
type DevConf uint16

// IPv4 per-device settings overlaynet reads or changes.
const (
	DevConfForwarding      DevConf = 1  // forwarding: packets received on the device may be forwarded
	DevConfMCForwarding    DevConf = 2  // mc_forwarding (read-only)
	DevConfProxyARP        DevConf = 3  // proxy_arp
	DevConfAcceptRedirects DevConf = 4  // accept_redirects
	DevConfSendRedirects   DevConf = 6  // send_redirects
	DevConfRPFilter        DevConf = 8  // rp_filter
	DevConfARPIgnore       DevConf = 19 // arp_ignore
	DevConfAcceptLocal     DevConf = 23 // accept_local
	DevConfRouteLocalnet   DevConf = 26 // route_localnet
)

// String returns the setting's sysctl name ("forwarding", "rp_filter").
func (d DevConf) String() string {
	switch d {
	case DevConfForwarding:
		return "forwarding"
	case DevConfMCForwarding:
		return "mc_forwarding"
	case DevConfProxyARP:
		return "proxy_arp"
	case DevConfAcceptRedirects:
		return "accept_redirects"
	case DevConfSendRedirects:
		return "send_redirects"
	case DevConfRPFilter:
		return "rp_filter"
	case DevConfARPIgnore:
		return "arp_ignore"
	case DevConfAcceptLocal:
		return "accept_local"
	case DevConfRouteLocalnet:
		return "route_localnet"
	}
	return fmt.Sprintf("devconf(%d)", uint16(d))
}

// DevConfValue is one setting and its value.
type DevConfValue struct {
	Conf  DevConf
	Value uint32
}

// InetDevConf is a device's IPv4 settings as RTM_GETLINK reports them in
// IFLA_AF_SPEC / AF_INET / IFLA_INET_CONF: setting d at Values[d-1].
type InetDevConf struct {
	Values []uint32
}

// Get returns setting d, and false if the kernel did not report it.
func (c InetDevConf) Get(d DevConf) (uint32, bool) {
	if d == 0 || int(d) > len(c.Values) {
		return 0, false
	}
	return c.Values[d-1], true
}

// ErrNoInetConf is returned when a link message carries no IPv4 settings
// (a device without IPv4, or a message that is not a full RTM_NEWLINK).
var ErrNoInetConf = errors.New("rtnl: link message has no IPv4 device settings (IFLA_AF_SPEC/AF_INET)")

// DecodeInetDevConf reads the IPv4 settings out of a link message body
// (ifinfomsg and attributes). It accepts IFLA_INET_CONF both as the
// kernel's array of u32 and, when flagged nested, as the attributes a
// request carries (EncodeLinkInetConf). It never panics.
func DecodeInetDevConf(b []byte) (InetDevConf, error) {
	conf, found, err := afConf(b, FamilyInet, iflaInetConf)
	switch {
	case err != nil:
		return InetDevConf{}, err
	case !found:
		return InetDevConf{}, ErrNoInetConf
	case conf.Nested():
		return decodeInetConfAttrs(conf.Nest())
	}
	values, err := u32Array("IFLA_INET_CONF", conf.Bytes())
	return InetDevConf{Values: values}, err
}

// afConf finds attribute typ of family's IFLA_AF_SPEC entry in a link
// message body; found is false when the body has none.
func afConf(b []byte, family, typ uint16) (_ AttributeDecoder, found bool, _ error) {
	if len(b) < ifinfomsgLen {
		return AttributeDecoder{}, false, errShortIfinfomsg
	}
	ad := NewAttributeDecoder(b[ifinfomsgLen:])
	for ad.Next() {
		if ad.Type() != iflaAFSpec {
			continue
		}
		af := ad.Nest()
		for af.Next() {
			if af.Type() != family {
				continue
			}
			in := af.Nest()
			for in.Next() {
				if in.Type() == typ {
					return in, true, nil
				}
			}
			if err := in.Err(); err != nil {
				return AttributeDecoder{}, false, fmt.Errorf("rtnl: %s: %w", familyName(family), err)
			}
		}
		if err := af.Err(); err != nil {
			return AttributeDecoder{}, false, fmt.Errorf("rtnl: IFLA_AF_SPEC: %w", err)
		}
	}
	if err := ad.Err(); err != nil {
		return AttributeDecoder{}, false, fmt.Errorf("rtnl: link: %w", err)
	}
	return AttributeDecoder{}, false, nil
}

func familyName(f uint16) string {
	if f == FamilyInet6 {
		return "AF_INET6"
	}
	return "AF_INET"
}

// u32Array reads the kernel's array of native-endian u32 (name is the
// attribute, for the error).
func u32Array(name string, data []byte) ([]uint32, error) {
	if len(data)%4 != 0 {
		return nil, fmt.Errorf("rtnl: %s of %d bytes is not a u32 array", name, len(data))
	}
	out := make([]uint32, len(data)/4)
	for i := range out {
		out[i] = binary.NativeEndian.Uint32(data[4*i:])
	}
	return out, nil
}

// maxDevConf bounds the settings a request may name (the kernel's
// IPV4_DEVCONF_MAX is 33 in Linux 6.x; leave room for later ones).
const maxDevConf = 64

func decodeInetConfAttrs(ad AttributeDecoder) (InetDevConf, error) {
	var c InetDevConf
	for ad.Next() {
		d := ad.Type()
		if d == 0 || d > maxDevConf {
			return InetDevConf{}, fmt.Errorf("rtnl: IFLA_INET_CONF setting %d out of range 1..%d", d, maxDevConf)
		}
		v := ad.Uint32()
		for len(c.Values) < int(d) {
			c.Values = append(c.Values, 0)
		}
		c.Values[d-1] = v
	}
	if err := ad.Err(); err != nil {
		return InetDevConf{}, fmt.Errorf("rtnl: IFLA_INET_CONF: %w", err)
	}
	return c, nil
}

// EncodeLinkInetConf appends an RTM_NEWLINK body that changes the IPv4
// settings vals of device index and nothing else: an ifinfomsg with the
// index and IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { setting: u32 ... } } },
// as `ip link set` does not offer and sysctl does through /proc.
func EncodeLinkInetConf(b []byte, index int32, vals ...DevConfValue) ([]byte, error) {
	if index <= 0 {
		return b, fmt.Errorf("rtnl: IPv4 settings need a device index, not %d", index)
	}
	if len(vals) == 0 {
		return b, errors.New("rtnl: no IPv4 setting to change")
	}
	for _, v := range vals {
		if v.Conf == 0 || v.Conf > maxDevConf {
			return b, fmt.Errorf("rtnl: IPv4 setting %d out of range 1..%d", v.Conf, maxDevConf)
		}
	}
	b = append(b, FamilyUnspec, 0, 0, 0)
	b = binary.NativeEndian.AppendUint32(b, uint32(index))
	b = binary.NativeEndian.AppendUint32(b, 0) // flags
	b = binary.NativeEndian.AppendUint32(b, 0) // change
	ae := NewAttributeEncoder(b)
	spec := ae.Begin(iflaAFSpec)
	inet := ae.Begin(FamilyInet)
	conf := ae.Begin(iflaInetConf)
	for _, v := range vals {
		ae.Uint32(uint16(v.Conf), v.Value)
	}
	ae.End(conf)
	ae.End(inet)
	ae.End(spec)
	return ae.Bytes(), nil
}
