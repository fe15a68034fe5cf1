package wake

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/arp"
)

var containerMAC = ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x02}

// arpRequest is a container's ARP request for target.
func arpRequest(target netip.Addr) []byte {
	f := make([]byte, 60)
	arp.PutRequest(f, containerMAC, [4]byte{10, 64, 0, 2}, target.As4())
	return f
}

// neighborSolicitation is a container's NS for target (to its
// solicited-node address, with a source link-layer address option).
func neighborSolicitation(target netip.Addr) []byte {
	f := make([]byte, ethHdrLen+ipv6HdrLen+32)
	t := target.As16()
	copy(f[0:6], []byte{0x33, 0x33, 0xff, t[13], t[14], t[15]})
	copy(f[6:12], containerMAC[:])
	binary.BigEndian.PutUint16(f[12:14], etherIPv6)
	ip := f[ethHdrLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], 32)
	ip[6], ip[7] = protoICMPv6, 255
	src := netip.MustParseAddr("fd00::2").As16()
	copy(ip[8:24], src[:])
	copy(ip[24:40], []byte{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, t[13], t[14], t[15]})
	icmp := ip[ipv6HdrLen:]
	icmp[0] = icmpv6NS
	copy(icmp[8:24], t[:])
	icmp[24], icmp[25] = 1, 1 // source link-layer address option
	copy(icmp[26:32], containerMAC[:])
	return f
}

func TestTarget(t *testing.T) {
	v4 := netip.MustParseAddr("10.65.0.1")
	v6 := netip.MustParseAddr("fd00::7")
	reply := arpRequest(v4)
	reply[21] = 2
	na := neighborSolicitation(v6)
	na[ethHdrLen+ipv6HdrLen] = 136 // Neighbor Advertisement
	udp6 := neighborSolicitation(v6)
	udp6[ethHdrLen+6] = 17
	code := neighborSolicitation(v6)
	code[ethHdrLen+ipv6HdrLen+1] = 1
	ipv4Frame := arpRequest(v4)
	binary.BigEndian.PutUint16(ipv4Frame[12:14], 0x0800)
	rarp := arpRequest(v4)
	binary.BigEndian.PutUint16(rarp[16:18], 0x86dd) // protocol type IPv6: no IPv4 ARP
	for _, c := range []struct {
		name  string
		frame []byte
		want  netip.Addr
	}{
		{"arp request", arpRequest(v4), v4},
		{"arp request unpadded", arpRequest(v4)[:arp.FrameLen], v4},
		{"neighbor solicitation", neighborSolicitation(v6), v6},
		{"neighbor solicitation without option", neighborSolicitation(v6)[:nsTargetStart+16], v6},
		{"arp reply", reply, netip.Addr{}},
		{"arp for another protocol", rarp, netip.Addr{}},
		{"arp cut short", arpRequest(v4)[:arp.FrameLen-1], netip.Addr{}},
		{"neighbor advertisement", na, netip.Addr{}},
		{"ipv6 udp", udp6, netip.Addr{}},
		{"icmpv6 code 1", code, netip.Addr{}},
		{"ns cut short", neighborSolicitation(v6)[:nsTargetStart+15], netip.Addr{}},
		{"ipv4", ipv4Frame, netip.Addr{}},
		{"empty", nil, netip.Addr{}},
		{"header only", arpRequest(v4)[:ethHdrLen], netip.Addr{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok := Target(c.frame)
			if got != c.want || ok != c.want.IsValid() {
				t.Errorf("Target = %v, %v; want %v", got, ok, c.want)
			}
		})
	}
}

// FuzzTarget: Target never panics, and what it accepts is a request of
// the length it needs.
func FuzzTarget(f *testing.F) {
	f.Add(arpRequest(netip.MustParseAddr("10.65.0.1")))
	f.Add(neighborSolicitation(netip.MustParseAddr("fd00::7")))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ok := Target(b)
		if ok && (!a.IsValid() || (a.Is4() && len(b) < ethHdrLen+arpLen) || (a.Is6() && len(b) < nsTargetStart+16)) {
			t.Fatalf("Target(%x) = %v from a frame too short", b, a)
		}
	})
}
