package wireguard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/overlaynet/overlaynet/rtnl"
)

// Generic netlink: the controller family, which resolves a family's name
// to its id, and WireGuard's family ("wireguard", version 1,
// include/uapi/linux/wireguard.h).
const (
	genlIDCtrl         = 0x10 // GENL_ID_CTRL
	ctrlCmdGetFamily   = 3    // CTRL_CMD_GETFAMILY
	ctrlAttrFamilyID   = 1    // CTRL_ATTR_FAMILY_ID (u16)
	ctrlAttrFamilyName = 2    // CTRL_ATTR_FAMILY_NAME (string)
	genlHeaderLen      = 4    // struct genlmsghdr: cmd, version, reserved

	// FamilyName is WireGuard's generic netlink family.
	FamilyName       = "wireguard"
	wgGenlVersion    = 1
	wgCmdGetDevice   = 0
	wgCmdSetDevice   = 1
	wgDevIfindex     = 1 // WGDEVICE_A_IFINDEX u32
	wgDevIfname      = 2 // WGDEVICE_A_IFNAME string
	wgDevPrivateKey  = 3 // WGDEVICE_A_PRIVATE_KEY [32]
	wgDevPublicKey   = 4 // WGDEVICE_A_PUBLIC_KEY [32]
	wgDevFlags       = 5 // WGDEVICE_A_FLAGS u32
	wgDevListenPort  = 6 // WGDEVICE_A_LISTEN_PORT u16
	wgDevFwmark      = 7 // WGDEVICE_A_FWMARK u32
	wgDevPeers       = 8 // WGDEVICE_A_PEERS nested array
	wgDevFReplace    = 1 // WGDEVICE_F_REPLACE_PEERS
	wgPeerPublicKey  = 1 // WGPEER_A_PUBLIC_KEY [32]
	wgPeerFlags      = 3 // WGPEER_A_FLAGS u32
	wgPeerEndpoint   = 4 // WGPEER_A_ENDPOINT sockaddr_in/in6
	wgPeerKeepalive  = 5 // WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL u16
	wgPeerHandshake  = 6 // WGPEER_A_LAST_HANDSHAKE_TIME __kernel_timespec
	wgPeerRxBytes    = 7 // WGPEER_A_RX_BYTES u64
	wgPeerTxBytes    = 8 // WGPEER_A_TX_BYTES u64
	wgPeerAllowedIPs = 9 // WGPEER_A_ALLOWEDIPS nested array
	wgPeerFRemove    = 1 // WGPEER_F_REMOVE_ME
	wgPeerFReplaceIP = 2 // WGPEER_F_REPLACE_ALLOWEDIPS
	wgPeerFUpdate    = 4 // WGPEER_F_UPDATE_ONLY
	wgAIPFamily      = 1 // WGALLOWEDIP_A_FAMILY u16
	wgAIPAddr        = 2 // WGALLOWEDIP_A_IPADDR
	wgAIPCidr        = 3 // WGALLOWEDIP_A_CIDR_MASK u8
	afInet           = 2
	afInet6          = 10
	sockaddrIn4Len   = 16
	sockaddrIn6Len   = 28
	timespecLen      = 16
)

// peersPerMessage bounds the peers of one WG_CMD_SET_DEVICE: a message
// stays far below a socket's send buffer.
const peersPerMessage = 64

// Kernel is the Client of the kernel's WireGuard devices: generic netlink
// messages of the "wireguard" family over an rtnl.Conn (a NETLINK_GENERIC
// socket, DialKernel; or any Transport, for tests).
type Kernel struct {
	conn   *rtnl.Conn
	family uint16
}

var _ Client = (*Kernel)(nil)

// ErrNoKernelWireGuard is returned when the kernel has no WireGuard (no
// generic netlink family "wireguard": no module).
var ErrNoKernelWireGuard = errors.New("wireguard: the kernel has no WireGuard (no generic netlink family \"wireguard\")")

// NewKernel resolves WireGuard's family over conn (a generic netlink
// Conn) and returns the client; Close closes conn.
func NewKernel(conn *rtnl.Conn) (*Kernel, error) {
	ae := rtnl.NewAttributeEncoder(genlHeader(nil, ctrlCmdGetFamily, 2))
	ae.String(ctrlAttrFamilyName, FamilyName)
	var id uint16
	err := conn.Request(genlIDCtrl, 0, ae.Bytes(), func(m rtnl.Message) error {
		if len(m.Data) < genlHeaderLen {
			return errors.New("wireguard: short generic netlink reply")
		}
		ad := rtnl.NewAttributeDecoder(m.Data[genlHeaderLen:])
		for ad.Next() {
			if ad.Type() == ctrlAttrFamilyID {
				id = ad.Uint16()
			}
		}
		return ad.Err()
	})
	if err != nil {
		var oe *rtnl.OpError
		if errors.As(err, &oe) && errors.Is(oe.Err, rtnl.ErrnoFromLinux(2)) { // ENOENT
			return nil, ErrNoKernelWireGuard
		}
		return nil, fmt.Errorf("wireguard: resolve the generic netlink family: %w", err)
	}
	if id == 0 {
		return nil, ErrNoKernelWireGuard
	}
	return &Kernel{conn: conn, family: id}, nil
}

// Close closes the connection.
func (k *Kernel) Close() error { return k.conn.Close() }

func genlHeader(b []byte, cmd, version uint8) []byte {
	return append(b, cmd, version, 0, 0)
}

// Device dumps the device named name (WG_CMD_GET_DEVICE); the kernel
// splits a device of many peers over several messages, merged here.
func (k *Kernel) Device(name string) (*Device, error) {
	ae := rtnl.NewAttributeEncoder(genlHeader(nil, wgCmdGetDevice, wgGenlVersion))
	ae.String(wgDevIfname, name)
	d := &Device{Name: name}
	err := k.conn.Dump(k.family, ae.Bytes(), func(m rtnl.Message) error {
		if len(m.Data) < genlHeaderLen {
			return errors.New("wireguard: short generic netlink reply")
		}
		return decodeDevice(d, m.Data[genlHeaderLen:])
	})
	if err != nil {
		return nil, fmt.Errorf("wireguard: device %s: %w", name, err)
	}
	return d, nil
}

// Configure sends c to the device named name (WG_CMD_SET_DEVICE), in
// messages of at most peersPerMessage peers; only the first carries the
// key, the port and REPLACE_PEERS.
func (k *Kernel) Configure(name string, c Config) error {
	for i, msg := range encodeSetDevice(name, c) {
		if err := k.conn.Execute(k.family, 0, msg); err != nil {
			return fmt.Errorf("wireguard: device %s: configure (message %d): %w", name, i+1, err)
		}
	}
	return nil
}

// encodeSetDevice is c as WG_CMD_SET_DEVICE messages (their genlmsghdr and
// attributes).
func encodeSetDevice(name string, c Config) [][]byte {
	var out [][]byte
	first := true
	for start := 0; first || start < len(c.Peers); start += peersPerMessage {
		ae := rtnl.NewAttributeEncoder(genlHeader(nil, wgCmdSetDevice, wgGenlVersion))
		ae.String(wgDevIfname, name)
		if first {
			if c.PrivateKey != nil {
				ae.Raw(wgDevPrivateKey, c.PrivateKey.b[:])
			}
			if c.ListenPort != 0 {
				ae.Uint16(wgDevListenPort, c.ListenPort)
			}
			if c.ReplacePeers {
				ae.Uint32(wgDevFlags, wgDevFReplace)
			}
		}
		if end := min(start+peersPerMessage, len(c.Peers)); start < end {
			peers := ae.Begin(wgDevPeers)
			for i, p := range c.Peers[start:end] {
				encodePeer(&ae, uint16(i), p)
			}
			ae.End(peers)
		}
		out = append(out, ae.Bytes())
		first = false
	}
	return out
}

func encodePeer(ae *rtnl.AttributeEncoder, index uint16, p PeerConfig) {
	m := ae.Begin(index)
	ae.Raw(wgPeerPublicKey, p.PublicKey[:])
	var flags uint32
	switch {
	case p.Remove:
		flags = wgPeerFRemove
	default:
		if p.UpdateOnly {
			flags |= wgPeerFUpdate
		}
		if p.ReplaceAllowedIPs {
			flags |= wgPeerFReplaceIP
		}
	}
	if flags != 0 {
		ae.Uint32(wgPeerFlags, flags)
	}
	if !p.Remove {
		if p.Endpoint.IsValid() {
			ae.Raw(wgPeerEndpoint, sockaddr(p.Endpoint))
		}
		if p.Keepalive > 0 {
			ae.Uint16(wgPeerKeepalive, uint16(p.Keepalive/time.Second))
		}
		if len(p.AllowedIPs) > 0 {
			ips := ae.Begin(wgPeerAllowedIPs)
			for j, a := range p.AllowedIPs {
				e := ae.Begin(uint16(j))
				family := uint16(afInet)
				if a.Addr().Is6() {
					family = afInet6
				}
				ae.Uint16(wgAIPFamily, family)
				ae.Addr(wgAIPAddr, a.Addr())
				ae.Uint8(wgAIPCidr, uint8(a.Bits()))
				ae.End(e)
			}
			ae.End(ips)
		}
	}
	ae.End(m)
}

// sockaddr encodes an endpoint as struct sockaddr_in or sockaddr_in6:
// the family in host order, the port in network order.
func sockaddr(ap netip.AddrPort) []byte {
	a := ap.Addr().Unmap()
	if a.Is4() {
		b := make([]byte, sockaddrIn4Len)
		binary.NativeEndian.PutUint16(b, afInet)
		binary.BigEndian.PutUint16(b[2:], ap.Port())
		v := a.As4()
		copy(b[4:], v[:])
		return b
	}
	b := make([]byte, sockaddrIn6Len)
	binary.NativeEndian.PutUint16(b, afInet6)
	binary.BigEndian.PutUint16(b[2:], ap.Port())
	v := a.As16()
	copy(b[8:], v[:])
	return b
}

// parseSockaddr decodes a sockaddr_in or sockaddr_in6.
func parseSockaddr(b []byte) (netip.AddrPort, error) {
	if len(b) < 2 {
		return netip.AddrPort{}, errors.New("short sockaddr")
	}
	switch binary.NativeEndian.Uint16(b) {
	case afInet:
		if len(b) < 8 {
			return netip.AddrPort{}, errors.New("short sockaddr_in")
		}
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:])), nil
	case afInet6:
		if len(b) < 24 {
			return netip.AddrPort{}, errors.New("short sockaddr_in6")
		}
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), binary.BigEndian.Uint16(b[2:])), nil
	}
	return netip.AddrPort{}, errors.New("sockaddr of an unknown family")
}

// decodeDevice adds one WG_CMD_GET_DEVICE reply's attributes to d. A peer
// whose allowed IPs did not fit the previous message starts the next one
// again, with the same public key: its IPs are appended to it.
func decodeDevice(d *Device, b []byte) error {
	ad := rtnl.NewAttributeDecoder(b)
	for ad.Next() {
		switch ad.Type() {
		case wgDevIfname:
			d.Name = ad.String()
		case wgDevPrivateKey:
			if ad.Len() == KeyLen {
				d.PrivateKey, _ = keyFromBytes(ad.Bytes())
			}
		case wgDevPublicKey:
			if ad.Len() == KeyLen {
				d.PublicKey = Key(ad.Bytes())
			}
		case wgDevListenPort:
			d.ListenPort = ad.Uint16()
		case wgDevPeers:
			peers := ad.Nest()
			for peers.Next() {
				p, err := decodePeer(peers.Nest())
				if err != nil {
					return err
				}
				if n := len(d.Peers); n > 0 && d.Peers[n-1].PublicKey == p.PublicKey {
					d.Peers[n-1].AllowedIPs = append(d.Peers[n-1].AllowedIPs, p.AllowedIPs...)
					continue
				}
				d.Peers = append(d.Peers, p)
			}
			if err := peers.Err(); err != nil {
				return err
			}
		}
	}
	return ad.Err()
}

func decodePeer(ad rtnl.AttributeDecoder) (Peer, error) {
	var p Peer
	for ad.Next() {
		switch ad.Type() {
		case wgPeerPublicKey:
			if ad.Len() != KeyLen {
				return p, errors.New("wireguard: peer public key is not 32 bytes")
			}
			p.PublicKey = Key(ad.Bytes())
		case wgPeerEndpoint:
			ep, err := parseSockaddr(ad.Bytes())
			if err != nil {
				return p, fmt.Errorf("wireguard: peer endpoint: %w", err)
			}
			p.Endpoint = ep
		case wgPeerHandshake:
			if b := ad.Bytes(); len(b) == timespecLen {
				sec := int64(binary.NativeEndian.Uint64(b))
				nsec := int64(binary.NativeEndian.Uint64(b[8:]))
				if sec != 0 || nsec != 0 {
					p.LastHandshake = time.Unix(sec, nsec)
				}
			}
		case wgPeerKeepalive:
			p.Keepalive = time.Duration(ad.Uint16()) * time.Second
		case wgPeerRxBytes:
			p.RxBytes = ad.Uint64()
		case wgPeerTxBytes:
			p.TxBytes = ad.Uint64()
		case wgPeerAllowedIPs:
			ips := ad.Nest()
			for ips.Next() {
				a, err := decodeAllowedIP(ips.Nest())
				if err != nil {
					return p, err
				}
				p.AllowedIPs = append(p.AllowedIPs, a)
			}
			if err := ips.Err(); err != nil {
				return p, err
			}
		}
	}
	return p, ad.Err()
}

func decodeAllowedIP(ad rtnl.AttributeDecoder) (netip.Prefix, error) {
	var addr netip.Addr
	bits := -1
	for ad.Next() {
		switch ad.Type() {
		case wgAIPAddr:
			addr = ad.Addr()
		case wgAIPCidr:
			bits = int(ad.Uint8())
		}
	}
	if err := ad.Err(); err != nil {
		return netip.Prefix{}, err
	}
	p := netip.PrefixFrom(addr, bits)
	if !p.IsValid() {
		return netip.Prefix{}, errors.New("wireguard: allowed IP that is no prefix")
	}
	return p, nil
}
