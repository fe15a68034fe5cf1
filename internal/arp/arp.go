// Package arp lays out the Ethernet frames of IPv4 ARP requests that
// overlaynet sends itself: the miss generator's requests and attach's
// gratuitous announcement.
package arp

import (
	"encoding/binary"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// FrameLen is the length of an Ethernet frame carrying an IPv4 ARP packet
// (42 bytes; the driver pads it to the 60-byte minimum).
const FrameLen = 14 + 28

// EtherType of ARP.
const etherARP = 0x0806

// PutRequest writes over f[:FrameLen] a broadcast Ethernet frame from mac
// carrying an ARP request "who has target? tell sender (at mac)". With
// target equal to sender it is an announcement (RFC 5227, a gratuitous ARP).
// f must hold at least FrameLen bytes.
func PutRequest(f []byte, mac ethaddr.MAC, sender, target [4]byte) {
	f = f[:FrameLen]
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:14], etherARP)
	a := f[14:]
	binary.BigEndian.PutUint16(a[0:2], 1)      // ARPHRD_ETHER
	binary.BigEndian.PutUint16(a[2:4], 0x0800) // ETH_P_IP
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], 1) // ARPOP_REQUEST
	copy(a[8:14], mac[:])
	copy(a[14:18], sender[:])
	clear(a[18:24]) // target MAC: unknown
	copy(a[24:28], target[:])
}
