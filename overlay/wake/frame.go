package wake

import (
	"encoding/binary"
	"net/netip"
)

// Ethernet and protocol numbers of the requests a Waker keeps.
const (
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
	ethHdrLen = 14

	arpLen        = 28
	arpOpRequest  = 1
	ipv6HdrLen    = 40
	protoICMPv6   = 58
	icmpv6NS      = 135 // Neighbor Solicitation
	nsTargetStart = ethHdrLen + ipv6HdrLen + 8
)

// Target returns the address a captured frame asks for: the target of an
// IPv4-over-Ethernet ARP request, or of an IPv6 Neighbor Solicitation (an
// ICMPv6 message right after the IPv6 header). Any other frame, and any
// frame too short for what it claims to be, is not a request (false).
func Target(frame []byte) (netip.Addr, bool) {
	if len(frame) < ethHdrLen {
		return netip.Addr{}, false
	}
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherARP:
		a := frame[ethHdrLen:]
		if len(a) < arpLen || binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != 0x0800 ||
			a[4] != 6 || a[5] != 4 || binary.BigEndian.Uint16(a[6:8]) != arpOpRequest {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(a[24:28])), true
	case etherIPv6:
		if len(frame) < nsTargetStart+16 || frame[ethHdrLen]>>4 != 6 || frame[ethHdrLen+6] != protoICMPv6 ||
			frame[ethHdrLen+ipv6HdrLen] != icmpv6NS || frame[ethHdrLen+ipv6HdrLen+1] != 0 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(frame[nsTargetStart : nsTargetStart+16])), true
	}
	return netip.Addr{}, false
}

// insn is one classic BPF instruction (struct sock_filter), portable.
type insn struct {
	code   uint16
	jt, jf uint8
	k      uint32
}

// Classic BPF opcodes and the ancillary offset of the packet type.
const (
	bpfLdHAbs    = 0x28           // BPF_LD|BPF_H|BPF_ABS
	bpfLdBAbs    = 0x30           // BPF_LD|BPF_B|BPF_ABS
	bpfJeqK      = 0x15           // BPF_JMP|BPF_JEQ|BPF_K
	bpfRetK      = 0x06           // BPF_RET|BPF_K
	skfAdPkttype = 0xfffff000 + 4 // SKF_AD_OFF + SKF_AD_PKTTYPE
	// packetOutgoing is PACKET_OUTGOING: a frame the device transmits.
	packetOutgoing = 4
)

// requestFilter is the socket filter of a Waker's capture: keep a frame
// transmitted to the device (packet type PACKET_OUTGOING: from the bridge,
// so from a local port) that is an ARP request (EtherType 0x0806, opcode 1)
// or an IPv6 Neighbor Solicitation (EtherType 0x86dd, next header ICMPv6,
// type 135); drop everything else before it is queued. Loads read big
// endian from the frame's start (the Ethernet header); a load past the end
// of a short frame drops it. Target checks the rest. Jump offsets count
// from the next instruction.
func requestFilter() []insn {
	const accept, drop = 0xffffffff, 0
	return []insn{
		/* 0 */ {bpfLdBAbs, 0, 0, skfAdPkttype},
		/* 1 */ {bpfJeqK, 0, 10, packetOutgoing}, // else 12
		/* 2 */ {bpfLdHAbs, 0, 0, 12}, // EtherType
		/* 3 */ {bpfJeqK, 0, 2, etherARP}, // else 6
		/* 4 */ {bpfLdHAbs, 0, 0, ethHdrLen + 6}, // ARP opcode
		/* 5 */ {bpfJeqK, 5, 6, arpOpRequest}, // 11 or 12
		/* 6 */ {bpfJeqK, 0, 5, etherIPv6}, // else 12
		/* 7 */ {bpfLdBAbs, 0, 0, ethHdrLen + 6}, // IPv6 next header
		/* 8 */ {bpfJeqK, 0, 3, protoICMPv6}, // else 12
		/* 9 */ {bpfLdBAbs, 0, 0, ethHdrLen + ipv6HdrLen}, // ICMPv6 type
		/* 10 */ {bpfJeqK, 0, 1, icmpv6NS}, // else 12
		/* 11 */ {bpfRetK, 0, 0, accept},
		/* 12 */ {bpfRetK, 0, 0, drop},
	}
}
