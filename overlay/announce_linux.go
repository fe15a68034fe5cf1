package overlay

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/arp"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// announce sends one gratuitous ARP request ("who has ip? tell ip", from
// mac) out of the interface ifindex of the network namespace ns. The bridge
// learns at once which port mac is behind — a container that moved here
// from another node may still be learned behind the vxlan port, where its
// frames would be lost until it spoke first — and neighbours that have ip
// cached refresh its MAC.
func announce(ns *rtnl.NetNS, ifindex int32, mac ethaddr.MAC, ip netip.Addr) error {
	if !ip.Is4() {
		return fmt.Errorf("overlay: gratuitous ARP for %s: not IPv4", ip)
	}
	frame := garpFrame(mac, ip)
	return ns.Do(func() error {
		// Protocol 0: the socket sends and never receives.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("overlay: gratuitous ARP: packet socket: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: int(ifindex), Protocol: htons(unix.ETH_P_ARP), Halen: 6,
			Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
		if err := unix.Sendto(fd, frame, 0, to); err != nil {
			return fmt.Errorf("overlay: gratuitous ARP for %s: %w", ip, err)
		}
		return nil
	})
}

// garpFrame is an Ethernet broadcast carrying an ARP request whose sender
// and target are both ip at mac (RFC 5227's announcement).
func garpFrame(mac ethaddr.MAC, ip netip.Addr) []byte {
	f := make([]byte, arp.FrameLen)
	ip4 := ip.As4()
	arp.PutRequest(f, mac, ip4, ip4)
	return f
}

// htons returns v in network byte order, as a sockaddr's protocol field
// holds it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
