// Package spoof builds and sends the hostile frames of the security tests:
// Ethernet frames with any source, IPv4/UDP packets with any source
// address, forged ARP replies, and VXLAN datagrams wrapping any frame (as
// a stranger on the underlay would send them). It also listens for UDP
// in a network namespace, to tell whether something was delivered.
package spoof

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
)

// ParseMAC parses "02:42:..." or panics (test input).
func ParseMAC(s string) ethaddr.MAC {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		panic(fmt.Sprintf("spoof: bad MAC %q", s))
	}
	return ethaddr.MAC(hw)
}

// Ether returns an Ethernet frame.
func Ether(dst, src ethaddr.MAC, etherType uint16, payload []byte) []byte {
	f := make([]byte, 14, 14+len(payload))
	copy(f[0:6], dst[:])
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:14], etherType)
	return append(f, payload...)
}

// IPv4UDP returns an IPv4 packet (header checksum set, UDP checksum 0)
// carrying a UDP datagram.
func IPv4UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	p[8] = 64
	p[9] = unix.IPPROTO_UDP
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:12], checksum(p[:20]))
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:2], sport)
	binary.BigEndian.PutUint16(u[2:4], dport)
	binary.BigEndian.PutUint16(u[4:6], uint16(8+len(payload)))
	copy(u[8:], payload)
	return p
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// EtherIPv4 and EtherARP are ethertypes.
const (
	EtherIPv4 = 0x0800
	EtherARP  = 0x0806
)

// ARPReply returns an ARP reply "spa is at sha" to tha/tpa.
func ARPReply(sha ethaddr.MAC, spa netip.Addr, tha ethaddr.MAC, tpa netip.Addr) []byte {
	a := make([]byte, 28)
	binary.BigEndian.PutUint16(a[0:2], 1)
	binary.BigEndian.PutUint16(a[2:4], EtherIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 2)
	s, t := spa.As4(), tpa.As4()
	copy(a[8:14], sha[:])
	copy(a[14:18], s[:])
	copy(a[18:24], tha[:])
	copy(a[24:28], t[:])
	return a
}

// VXLAN returns a VXLAN header for vni followed by frame (RFC 7348).
func VXLAN(vni uint32, frame []byte) []byte {
	h := make([]byte, 8, 8+len(frame))
	h[0] = 0x08
	binary.BigEndian.PutUint32(h[4:8], vni<<8)
	return append(h, frame...)
}

// SendFrame sends frame out of the interface ifname of the namespace at
// nsPath, through a packet socket (no address of its own is needed).
func SendFrame(nsPath, ifname string, frame []byte) error {
	ns, err := rtnl.OpenNetNS(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var dst [8]byte
		copy(dst[:], frame[0:6])
		return unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6, Addr: dst})
	})
}

// SendUDP sends payload from the namespace at nsPath to dst over a UDP
// socket bound to src (port 0: any), as any host of the underlay can.
func SendUDP(nsPath string, src, dst netip.AddrPort, payload []byte) error {
	ns, err := rtnl.OpenNetNS(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	return ns.Do(func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteToUDPAddrPort(payload, dst)
		return err
	})
}

// Listener is a UDP socket in a namespace collecting what it receives.
type Listener struct {
	c *net.UDPConn
}

// ListenUDP opens a UDP socket on addr in the namespace at nsPath.
func ListenUDP(nsPath string, addr netip.AddrPort) (*Listener, error) {
	ns, err := rtnl.OpenNetNS(nsPath)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	var c *net.UDPConn
	err = ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Listener{c: c}, nil
}

// Received is one datagram a Listener got.
type Received struct {
	From    netip.AddrPort
	Payload string
}

// Wait returns what arrives within d (nothing: an empty slice).
func (l *Listener) Wait(d time.Duration) []Received {
	var out []Received
	l.c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	for {
		n, from, err := l.c.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) || err != nil {
			return out
		}
		out = append(out, Received{From: from, Payload: string(buf[:n])})
	}
}

// Close closes the socket.
func (l *Listener) Close() error { return l.c.Close() }
