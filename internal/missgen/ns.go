package missgen

import (
	"encoding/binary"

	"github.com/overlaynet/overlaynet/ethaddr"
)

// nsLen is the length of the Ethernet frame of a Neighbor Solicitation
// with a source link-layer address option: 14 + 40 (IPv6) + 24 (NS) + 8.
const nsLen = 14 + 40 + 32

// putNS writes over f[:nsLen] the frame of an IPv6 Neighbor Solicitation
// (RFC 4861) from mac and src asking for target, sent as a host sends it:
// to target's solicited-node multicast group (ff02::1:ffXX:XXXX, Ethernet
// 33:33:ff:XX:XX:XX), hop limit 255, with the source link-layer address
// option and its ICMPv6 checksum. It returns nsLen.
func putNS(f []byte, mac ethaddr.MAC, src, target [16]byte) int {
	f = f[:nsLen]
	group := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: target[13], 14: target[14], 15: target[15]}
	copy(f[0:6], []byte{0x33, 0x33, 0xff, target[13], target[14], target[15]})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:14], 0x86dd)
	ip := f[14:54]
	clear(ip[:4])
	ip[0] = 0x60                            // version 6
	binary.BigEndian.PutUint16(ip[4:6], 32) // payload: NS and its option
	ip[6], ip[7] = 58, 255                  // ICMPv6, hop limit 255
	copy(ip[8:24], src[:])
	copy(ip[24:40], group[:])
	m := f[54:]
	m[0], m[1] = 135, 0 // Neighbor Solicitation, code 0
	clear(m[2:8])       // checksum (below), reserved
	copy(m[8:24], target[:])
	m[24], m[25] = 1, 1 // source link-layer address, 8 bytes
	copy(m[26:32], mac[:])
	binary.BigEndian.PutUint16(m[2:4], icmp6Checksum(src, group, m))
	return nsLen
}

// icmp6Checksum is the ICMPv6 checksum of msg (its checksum field zero)
// from src to dst: the one's complement sum over the IPv6 pseudo-header
// and the message.
func icmp6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += uint32(len(msg)) + 58 // upper-layer length, next header
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
